"""Non-blocking retries for consumers: a retry topic per context, and parked keys.

A record that fails for a reason other than an outage is not retried in place (that would stall
its whole partition): it is copied to `<ns>.<context>.retry` with the attempt count and a
not-before time, and its key (aggregate id) is *parked*. Later records of a parked key follow it
into the retry topic instead of being applied, and only the head of a key's queue may be applied,
so one aggregate's events keep their order while every other aggregate flows on. After the last
attempt the record is dead-lettered and the key's queue moves on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Message
from django.apps import apps
from django.db import transaction

ORIGIN = "orderflow_origin"  # "topic:partition:offset" of the first delivery
ATTEMPT = "orderflow_attempt"  # failed tries so far
NOT_BEFORE = "orderflow_not_before"  # epoch milliseconds
LAST_ERROR = "orderflow_last_error"
_OURS = {ORIGIN, ATTEMPT, NOT_BEFORE, LAST_ERROR}


@dataclass(frozen=True)
class Delivery:
    """A record as the consumer sees it, whether it came from its topic or the retry topic."""

    message: Message
    origin: str
    attempt: int
    not_before_ms: int
    headers: list[tuple[str, bytes]]  # as first delivered, without our retry headers
    from_retry: bool

    @property
    def key(self) -> str | None:
        raw = self.message.key()
        return raw.decode("utf-8", "replace") if raw else None

    @property
    def origin_coordinates(self) -> tuple[str, int, int]:
        topic, partition, offset = self.origin.rsplit(":", 2)
        return topic, int(partition), int(offset)


def delivery_of(message: Message, retry_topic: str) -> Delivery:
    raw = list(message.headers() or [])
    ours = {k: (v or b"").decode() for k, v in raw if k in _OURS}
    headers = [(k, v) for k, v in raw if k not in _OURS]
    if message.topic() == retry_topic and ORIGIN in ours:
        return Delivery(
            message, ours[ORIGIN], int(ours.get(ATTEMPT, "0")), int(ours.get(NOT_BEFORE, "0")), headers, True
        )
    return Delivery(message, f"{message.topic()}:{message.partition()}:{message.offset()}", 0, 0, headers, False)


def retry_headers(delivery: Delivery, *, attempt: int, not_before_ms: int, error: str) -> list[tuple[str, bytes]]:
    return [
        *delivery.headers,
        (ORIGIN, delivery.origin.encode()),
        (ATTEMPT, str(attempt).encode()),
        (NOT_BEFORE, str(not_before_ms).encode()),
        (LAST_ERROR, error[:1000].encode()),
    ]


def now_ms() -> int:
    return int(time.time() * 1000)


class ParkedKeys:
    """The consumer's parked keys: rows in the context's database, cached in memory.

    Each key belongs to one partition, so one group member owns it at a time; the cache is
    reloaded whenever partitions are assigned.
    """

    def __init__(self, context: str, consumer: str) -> None:
        self.context, self.consumer = context, consumer
        self.model = apps.get_model(context, "ParkedKey")
        self._cache: dict[str, tuple[list[str], int]] = {}
        self.stale = False  # set when a reload failed: reload before trusting the cache

    def _rows(self):
        return self.model.objects.using(self.context).filter(consumer=self.consumer)

    def reload(self) -> None:
        self._cache = {row.key: (list(row.queue), _ms(row.head_not_before)) for row in self._rows()}
        self.stale = False

    def is_parked(self, key: str) -> bool:
        return key in self._cache

    def queue(self, key: str) -> list[str]:
        return self._cache.get(key, ([], 0))[0]

    def head_not_before_ms(self, key: str) -> int:
        return self._cache.get(key, ([], 0))[1]

    def park(self, key: str, origin: str, *, head_not_before_ms: int | None = None) -> None:
        """Add `origin` to the key's queue (once); optionally set when its head may run next."""
        with transaction.atomic(using=self.context):
            row, _ = self._rows().select_for_update().get_or_create(consumer=self.consumer, key=key)
            if origin not in row.queue:
                row.queue = [*row.queue, origin]
            if head_not_before_ms is not None:
                row.head_not_before = datetime.fromtimestamp(head_not_before_ms / 1000, tz=UTC)
            row.save(using=self.context)
        self._cache[key] = (list(row.queue), _ms(row.head_not_before))

    def release(self, key: str, origin: str) -> None:
        """`origin` was applied or dead-lettered: drop it; unpark the key when nothing waits."""
        with transaction.atomic(using=self.context):
            row = self._rows().select_for_update().filter(key=key).first()
            if row is None:
                self._cache.pop(key, None)
                return
            row.queue = [o for o in row.queue if o != origin]
            if row.queue:
                row.save(using=self.context)
                self._cache[key] = (list(row.queue), _ms(row.head_not_before))
            else:
                row.delete()
                self._cache.pop(key, None)


def _ms(value) -> int:
    return int(value.timestamp() * 1000) if value else 0

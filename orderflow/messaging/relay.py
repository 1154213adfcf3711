"""The polling outbox relay: drain a context's outbox to Kafka in position order.

One active relay per context: every batch runs in a transaction that holds the context's
transaction-level advisory lock, so a second relay (another worker, beat and a kick at once)
simply finds nothing to do. A batch is produced, flushed and acknowledged before its rows are
marked published in the same transaction; a crash in between republishes the batch, which the
consumers' inbox makes harmless (at-least-once delivery, exactly-once effect).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer
from django.db import OperationalError, connections, transaction
from django.utils import timezone
from psycopg.errors import LockNotAvailable

from orderflow.faults import crash_point
from orderflow.messaging.envelope import SPECVERSION
from orderflow.messaging.outbox import outbox_model

log = logging.getLogger(__name__)


def relay_lock_key(context: str) -> int:
    # A stable signed 64-bit key per context for pg advisory locks.
    return zlib.crc32(f"orderflow.relay.{context}".encode())


@dataclass
class RelayResult:
    selected: int = 0
    published: int = 0
    failed: int = 0
    batches: int = 0
    locked_out: bool = False


_COLUMNS = "position, id, aggregateid, type, payload::text, topic, headers::text, occurred_at"
# Fast path: nothing is parked, so the oldest unpublished rows are the batch.
_SELECT = f"""
    SELECT {_COLUMNS} FROM {{table}}
    WHERE published_at IS NULL
    ORDER BY position
    LIMIT %s
    FOR UPDATE
"""
# Some aggregates are parked (a row failed and waits for its next attempt): leave out every row of
# those aggregates, so they keep their order, and let all the others flow.
_SELECT_AROUND_PARKED = f"""
    SELECT {_COLUMNS} FROM {{table}} o
    WHERE o.published_at IS NULL
      AND (o.aggregatetype, o.aggregateid) NOT IN (
          SELECT aggregatetype, aggregateid FROM {{table}}
          WHERE published_at IS NULL AND next_attempt_at > now())
    ORDER BY o.position
    LIMIT %s
    FOR UPDATE
"""
_ANY_PARKED = "SELECT EXISTS (SELECT 1 FROM {table} WHERE published_at IS NULL AND next_attempt_at IS NOT NULL)"
MAX_BACKOFF_S = 300


def _headers(context: str, event_id, ce_type: str, subject: str, occurred_at, extra: dict) -> list[tuple[str, bytes]]:
    headers = [
        ("ce_specversion", SPECVERSION),
        ("ce_id", str(event_id)),
        ("ce_type", ce_type),
        ("ce_source", f"/orderflow/{context}"),
        ("ce_subject", subject),
        ("ce_time", occurred_at.isoformat()),
        ("content-type", "application/json"),
    ]
    headers.extend((k, str(v)) for k, v in extra.items())
    return [(k, v.encode()) for k, v in headers]


def relay_batch(*, context: str, producer: Producer, batch_size: int, flush_timeout: float = 30.0) -> RelayResult:
    """Publish one batch. Returns counts; `locked_out` if another relay holds the context, or a
    pending row stayed locked by another transaction (the next run tries again)."""
    try:
        return _relay_batch(context=context, producer=producer, batch_size=batch_size, flush_timeout=flush_timeout)
    except OperationalError as exc:
        if not isinstance(exc.__cause__, LockNotAvailable):
            raise
        log.info("relay %s: a pending row is locked by another transaction; next run", context)
        return RelayResult(batches=1, locked_out=True)


def _relay_batch(*, context: str, producer: Producer, batch_size: int, flush_timeout: float) -> RelayResult:
    table = connections[context].ops.quote_name(outbox_model(context)._meta.db_table)
    result = RelayResult(batches=1)
    with transaction.atomic(using=context), connections[context].cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [relay_lock_key(context)])
        if not cursor.fetchone()[0]:
            result.locked_out = True
            return result
        # Not SKIP LOCKED: the advisory lock already makes this the only relay, and skipping a row
        # another transaction holds (an admin retry, say) would let its aggregate's next event
        # overtake it. Wait briefly instead; on timeout the run ends and the next one retries.
        cursor.execute("SET LOCAL lock_timeout = '2s'")
        cursor.execute(_ANY_PARKED.format(table=table))
        query = _SELECT_AROUND_PARKED if cursor.fetchone()[0] else _SELECT
        cursor.execute(query.format(table=table), [batch_size])
        rows = cursor.fetchall()
        if not rows:
            return result

        errors: dict[int, str] = {}

        def delivered(position: int):
            def callback(err, _msg):
                if err is not None:
                    errors[position] = f"{err.name()}: {err.str()}"

            return callback

        refused: set[str] = set()  # aggregates with a row the producer refused outright
        for position, event_id, aggregate_id, ce_type, payload, topic, headers, occurred_at in rows:
            if aggregate_id in refused:
                continue  # never let a later event overtake the refused one
            while True:
                try:
                    producer.produce(
                        topic,
                        key=aggregate_id.encode(),
                        value=payload.encode(),
                        headers=_headers(
                            context, event_id, ce_type, aggregate_id, occurred_at, json.loads(headers or "{}")
                        ),
                        on_delivery=delivered(position),
                    )
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
                except KafkaException as exc:  # e.g. larger than message.max.bytes
                    errors[position] = f"{exc.args[0].name()}: {exc.args[0].str()}"
                    refused.add(aggregate_id)
                    break
        try:
            remaining = producer.flush(flush_timeout)
        except KafkaException as exc:  # a fatal producer error: nothing of this batch is acknowledged
            remaining = len(rows)
            for position, *_ in rows:
                errors.setdefault(position, f"{exc.args[0].name()}: {exc.args[0].str()}")
        if remaining:
            for position, *_ in rows:
                errors.setdefault(position, f"{KafkaError._MSG_TIMED_OUT}: not acknowledged within {flush_timeout}s")
        crash_point("relay_after_ack")

        # Keep per-aggregate order: after an aggregate's first failed event, none of its later
        # events in this batch count as published (they are sent again after the failed one).
        blocked: set[str] = set()
        done: list[int] = []
        for position, _id, aggregate_id, *_ in rows:
            if position in errors or aggregate_id in blocked:
                blocked.add(aggregate_id)
            else:
                done.append(position)
        now = timezone.now()
        if done:
            cursor.execute(
                f"UPDATE {table} SET published_at = %s, next_attempt_at = NULL WHERE position = ANY(%s)", [now, done]
            )
        for position, message in errors.items():
            # Park the row (and so its aggregate) until its next attempt: 1, 2, 4 … s, at most
            # MAX_BACKOFF_S (`attempts` on the right is the value before this failure).
            cursor.execute(
                f"UPDATE {table} SET attempts = attempts + 1, last_error = %s, "
                # clock_timestamp(), not now(): now() is when this transaction began, before the
                # produce and flush, so a short backoff would already be over.
                f"next_attempt_at = clock_timestamp() + make_interval(secs => LEAST(power(2, attempts), %s)) "
                f"WHERE position = %s",
                [message, MAX_BACKOFF_S, position],
            )
        result.selected = len(rows)
        result.published = len(done)
        result.failed = len(errors)
        if errors:
            log.warning(
                "relay %s: %d event(s) not acknowledged, first: %s", context, len(errors), next(iter(errors.values()))
            )
    return result


def relay_outbox(*, context: str, producer: Producer, batch_size: int = 1000, max_seconds: float = 5.0) -> RelayResult:
    """Drain until empty, locked out, nothing could be published, or `max_seconds` (beat or a
    kick runs it again). A failed row parks its aggregate; the others keep flowing."""
    total = RelayResult(batches=0)
    deadline = time.monotonic() + max_seconds
    while True:
        batch = relay_batch(context=context, producer=producer, batch_size=batch_size)
        total.batches += 1
        total.published += batch.published
        total.failed += batch.failed
        total.locked_out = batch.locked_out
        if batch.locked_out or batch.published == 0 or batch.selected < batch_size or time.monotonic() >= deadline:
            return total


def purge_published(*, context: str, older_than) -> int:
    """Delete rows published before `older_than`; unpublished rows are never purged."""
    deleted, _ = (
        outbox_model(context)
        .objects.using(context)
        .filter(published_at__isnull=False, published_at__lt=older_than)
        .delete()
    )
    return deleted


def republish_retained(*, context: str) -> int:
    """Mark every retained row unpublished so the relay sends it again, in position order.

    For a fresh broker (the embedded, memory-only one after a restart, or a new cluster after a
    disaster): consumers' inboxes drop what they already applied.
    """
    return outbox_model(context).objects.using(context).filter(published_at__isnull=False).update(published_at=None)

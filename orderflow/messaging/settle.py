"""Whether the messaging has caught up: every outbox drained, every consumer group in the group
and at the end of its topics. `make run` waits for it before saying the stack is ready, so the
first order a user posts finds the orders context's replica of the seeded catalog filled in."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from orderflow.messaging.consumer import consumer_topics, context_group, subscriptions
from orderflow.messaging.kafka import base_config
from orderflow.messaging.status import backlog

REQUEST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Lag:
    context: str
    backlog: int  # unpublished outbox rows
    group_state: str  # STABLE once a member has joined and has its partitions
    behind: dict[str, int]  # "topic[partition]" → records not yet committed by the group
    missing: tuple[str, ...] = ()  # subscribed topics the broker does not have

    @property
    def settled(self) -> bool:
        # No subscriptions means no group to wait for.
        return not (self.backlog or self.behind or self.missing) and self.group_state in ("STABLE", "")

    def describe(self) -> str:
        parts = []
        if self.backlog:
            parts.append(f"{self.backlog} outbox row(s) unpublished")
        if self.group_state not in ("STABLE", ""):
            parts.append(f"consumer group {self.group_state.lower()} (no member has joined yet)")
        parts += [f"topic {topic} missing" for topic in self.missing]
        parts += [f"{n} record(s) of {tp} not consumed" for tp, n in sorted(self.behind.items())]
        return f"{self.context}: {', '.join(parts) or 'settled'}"


def lags(contexts: Sequence[str], admin: AdminClient | None = None) -> list[Lag]:
    """Each context's outbox backlog and its consumer group's state and lag, as the broker has them."""
    admin = admin or AdminClient(base_config())
    topics = {c: consumer_topics(c, subscriptions(c)) for c in contexts}
    groups = {c: context_group(c) for c in contexts if topics[c]}
    states = {}
    if groups:
        for group, future in admin.describe_consumer_groups(
            list(groups.values()), request_timeout=REQUEST_TIMEOUT_S
        ).items():
            states[group] = future.result().state
    metadata = admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics
    result = []
    for context in contexts:
        behind: dict[str, int] = {}
        state = ""
        if topics[context]:
            state = states[groups[context]].name
            present = [t for t in topics[context] if t in metadata]
            behind = _behind(groups[context], [TopicPartition(t, p) for t in present for p in metadata[t].partitions])
        missing = tuple(t for t in topics[context] if t not in metadata)
        result.append(Lag(context, backlog(context), state, behind, missing))
    return result


def _behind(group: str, partitions: list[TopicPartition]) -> dict[str, int]:
    # A client with the group's id that never subscribes: it reads the group's committed offsets
    # without joining (and so without taking partitions from the real member).
    reader = Consumer({**base_config(), "group.id": group, "enable.auto.commit": False})
    try:
        answered = reader.committed(partitions, timeout=REQUEST_TIMEOUT_S)
        committed = {(tp.topic, tp.partition): tp.offset for tp in answered}
        behind = {}
        for tp in partitions:
            # Kafka answers the log's end. The embedded broker (Tansu 0.6) answers one past the
            # first offset of the last record batch: a group that has taken the last batch is at
            # or past it, which is all a consumer that applies a fetched batch at once needs.
            _low, end = reader.get_watermark_offsets(tp, timeout=REQUEST_TIMEOUT_S, cached=False)
            # No commit yet reads as a negative sentinel: everything from the start is still ahead.
            done = max(committed[(tp.topic, tp.partition)], 0)
            if end > done:
                behind[f"{tp.topic}[{tp.partition}]"] = end - done
        return behind
    finally:
        reader.close()


def await_settled(contexts: Sequence[str], *, timeout: float, interval: float = 0.5) -> list[Lag]:
    """Poll `lags` until every context is settled or `timeout` passes; the last answer either way
    (KafkaException if the broker never answered)."""
    deadline = time.monotonic() + timeout
    admin = AdminClient(base_config())
    while True:
        try:
            current = lags(contexts, admin)
        except KafkaException:  # the broker not answering (yet): it may, before the deadline
            if time.monotonic() >= deadline:
                raise
        else:
            if all(lag.settled for lag in current) or time.monotonic() >= deadline:
                return current
        time.sleep(interval)

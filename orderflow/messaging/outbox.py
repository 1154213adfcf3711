"""Write integration events to the producing context's outbox, inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.apps import apps
from django.db import connections, transaction
from django.utils import timezone

from contracts import EventType
from orderflow import tracing
from orderflow.messaging.bulk import json_rows
from orderflow.messaging.kafka import topic_name


def outbox_model(context: str):
    return apps.get_model(context, "OutboxEvent")


class Entry(NamedTuple):
    """One event for `record_many`; `trace` is the cause's trace (None: the current one)."""

    event_type: EventType
    aggregate_id: str
    data: dict[str, Any]
    trace: tracing.TraceContext | None = None


def record(*, event_type: EventType, aggregate_id: str, data: dict[str, Any]) -> uuid.UUID:
    """Validate `data` against its contract and add it to the context's outbox.

    Must run inside `transaction.atomic(using=<context>)` with the aggregate change: the event
    exists if and only if the change commits. After commit the relay is kicked at once.
    """
    context = event_type.context
    connection = transaction.get_connection(context)
    if not connection.in_atomic_block:
        raise RuntimeError(f"outbox.record for {event_type.type} outside a transaction on '{context}'")
    event_type.validate(data)
    trace = tracing.current().child()
    event_id = uuid.uuid4()
    outbox_model(context).objects.using(context).create(
        event_id=event_id,
        aggregatetype=event_type.aggregate,
        aggregateid=str(aggregate_id),
        type=event_type.type,
        payload=data,
        topic=topic_name(event_type.stream),
        headers={
            k: v
            for k, v in (
                ("traceparent", trace.traceparent),
                ("correlation_id", trace.correlation_id),
                ("causation_id", trace.causation_id),
            )
            if v
        },
        occurred_at=timezone.now(),
    )
    _kick_after_commit(connection, context)
    return event_id


def record_many(*, entries: Sequence[Entry]) -> list[uuid.UUID]:
    """`record` for many events of one context at once: one INSERT, one relay kick.

    Rows are inserted in the order given (the relay publishes in that order), each with the
    headers `record` would write under its entry's trace. For a batch handler, whose per-row ORM
    `create` would cost more than the rest of its work.
    """
    if not entries:
        return []
    context = entries[0].event_type.context
    if any(entry.event_type.context != context for entry in entries):
        raise ValueError("outbox.record_many: every event must belong to one context's outbox")
    connection = transaction.get_connection(context)
    if not connection.in_atomic_block:
        raise RuntimeError(f"outbox.record_many outside a transaction on '{context}'")
    event_ids, rows = [], []
    for n, (event_type, aggregate_id, data, trace) in enumerate(entries):
        event_type.validate(data)
        trace = (trace or tracing.current()).child()
        headers = {"traceparent": trace.traceparent, "correlation_id": trace.correlation_id}
        if trace.causation_id:
            headers["causation_id"] = trace.causation_id
        event_id = uuid.uuid4()
        event_ids.append(event_id)
        rows.append(
            (
                n,
                event_id,
                event_type.aggregate,
                str(aggregate_id),
                event_type.type,
                data,
                topic_name(event_type.stream),
                headers,
            )
        )
    model = outbox_model(context)
    quote = connections[context].ops.quote_name
    # The model's Python-side defaults (attempts, last_error; nulls) are spelled out here. Rows
    # keep the given order: `position` is drawn in the SELECT's order.
    with connections[context].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} "
            f"({quote(model._meta.get_field('event_id').column)}, aggregatetype, aggregateid, type, payload, topic, "
            "headers, occurred_at, attempts, last_error) "
            "SELECT r.event_id, r.aggregatetype, r.aggregateid, r.type, r.payload, r.topic, r.headers, %s, 0, '' "
            "FROM json_to_recordset(%s::json) AS r(n integer, event_id uuid, aggregatetype text, aggregateid text, "
            "type text, payload jsonb, topic text, headers jsonb) ORDER BY r.n",
            [
                timezone.now(),
                json_rows(
                    ("n", "event_id", "aggregatetype", "aggregateid", "type", "payload", "topic", "headers"), rows
                ),
            ],
        )
    _kick_after_commit(connection, context)
    return event_ids


class _RelayKick:
    """The on-commit callback; one per transaction however many events it records."""

    def __init__(self, context: str) -> None:
        self.context = context

    def __call__(self) -> None:
        kick_relay(self.context)


def _kick_after_commit(connection, context: str) -> None:
    # A consumer batch or a saga step can record many events in one transaction: one kick is enough.
    if not any(isinstance(func, _RelayKick) for _sids, func, _robust in connection.run_on_commit):
        transaction.on_commit(_RelayKick(context), using=context)


def kick_relay(context: str) -> None:
    """Ask a worker to relay now; beat's one-second run remains the safety net if this is lost."""
    from orderflow.messaging.tasks import kick

    kick(context)

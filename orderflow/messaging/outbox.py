"""Write integration events to the producing context's outbox, inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from contracts import EventType
from orderflow import tracing
from orderflow.messaging.kafka import topic_name


def outbox_model(context: str):
    return apps.get_model(context, "OutboxEvent")


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row's values (field names as on the outbox models), validated and traced."""

    event_id: uuid.UUID
    aggregatetype: str
    aggregateid: str
    type: str
    payload: dict[str, Any]
    topic: str
    headers: dict[str, str]
    occurred_at: datetime


def prepare(*, event_type: EventType, aggregate_id: str, data: dict[str, Any]) -> OutboxRow:
    """Validate `data` against its contract and build the row, without writing it.

    For a use case that writes its rows in one statement of its own (orders' placement); it must
    insert the row in the same transaction as its change and call `kick_after_commit`.
    """
    event_type.validate(data)
    trace = tracing.current().child()
    return OutboxRow(
        event_id=uuid.uuid4(),
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


def record(*, event_type: EventType, aggregate_id: str, data: dict[str, Any]) -> uuid.UUID:
    """Validate `data` against its contract and add it to the context's outbox.

    Must run inside `transaction.atomic(using=<context>)` with the aggregate change: the event
    exists if and only if the change commits. After commit the relay is kicked at once.
    """
    context = event_type.context
    connection = transaction.get_connection(context)
    if not connection.in_atomic_block:
        raise RuntimeError(f"outbox.record for {event_type.type} outside a transaction on '{context}'")
    row = prepare(event_type=event_type, aggregate_id=aggregate_id, data=data)
    outbox_model(context).objects.using(context).create(**asdict(row))
    kick_after_commit(context)
    return row.event_id


class _RelayKick:
    """The on-commit callback; one per transaction however many events it records."""

    def __init__(self, context: str) -> None:
        self.context = context

    def __call__(self) -> None:
        kick_relay(self.context)


def kick_after_commit(context: str) -> None:
    """Kick the relay once the current transaction on `context` commits (at once in autocommit:
    a single statement has committed when it returns). One kick per transaction."""
    connection = transaction.get_connection(context)
    # A consumer batch or a saga step can record many events in one transaction: one kick is enough.
    if not any(isinstance(func, _RelayKick) for _sids, func, _robust in connection.run_on_commit):
        transaction.on_commit(_RelayKick(context), using=context)


# Contexts whose relay runs in this process right after each commit (see `inline_relay`).
_inline: set[str] = set()


@contextmanager
def inline_relay(context: str) -> Iterator[None]:
    """Within this block, a commit on `context` relays its outbox at once in this process instead
    of queueing a Celery task. The consume command runs its context's consumer inside it: nearly
    every event of the saga is recorded by a consumer, and a queued task costs more than the relay
    run itself (the kick's publish to Redis, the worker's dispatch, a second process waking).
    When the inline run is locked out (another relay holds the context), fails, or may have left
    rows, the Celery kick is sent as before; beat's one-second run stays the safety net."""
    _inline.add(context)
    try:
        yield
    finally:
        _inline.discard(context)


# In a web request (orderflow.messaging.after_response): the contexts to relay once the response
# has been sent.
_after_response: ContextVar[set[str] | None] = ContextVar("orderflow_relay_after_response", default=None)


@contextmanager
def relay_later(pending: set[str]) -> Iterator[None]:
    """Within this block a kick only adds its context to `pending`; the caller relays them later
    (a web request, once its response is sent)."""
    token = _after_response.set(pending)
    try:
        yield
    finally:
        _after_response.reset(token)


def kick_relay(context: str) -> None:
    """Relay now: after the response in a web request, at once in a process that relays its
    context inline, else through a worker; beat's one-second run remains the safety net."""
    from orderflow.messaging.tasks import kick, relay_here

    pending = _after_response.get()
    if pending is not None:
        pending.add(context)
        return
    if context in _inline and relay_here(context):
        return
    kick(context)

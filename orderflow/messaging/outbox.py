"""Write integration events to the producing context's outbox, inside the caller's transaction."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from django.apps import apps
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from contracts import EventType
from orderflow import ids, tracing
from orderflow.messaging import bulk, notify
from orderflow.messaging.kafka import topic_name

log = logging.getLogger(__name__)


def outbox_model(context: str):
    return apps.get_model(context, "OutboxEvent")


class Entry(NamedTuple):
    """One event for `record_many`; `trace` is the cause's trace (None: the current one)."""

    event_type: EventType
    aggregate_id: str
    data: dict[str, Any]
    trace: tracing.TraceContext | None = None


def _headers(trace: tracing.TraceContext) -> dict[str, str]:
    """The row's `headers`: the trace of the event (a child span of its cause's)."""
    headers = {"traceparent": trace.traceparent, "correlation_id": trace.correlation_id}
    if trace.causation_id:
        headers["causation_id"] = trace.causation_id
    return headers


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
        event_id=ids.uuid4(),
        aggregatetype=event_type.aggregate,
        aggregateid=str(aggregate_id),
        type=event_type.type,
        payload=data,
        topic=topic_name(event_type.stream),
        headers=_headers(trace),
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
        headers = _headers((trace or tracing.current()).child())
        event_id = ids.uuid4()
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
    bulk.execute(
        context,
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({quote(model._meta.get_field('event_id').column)}, aggregatetype, aggregateid, type, payload, topic, "
        "headers, occurred_at, attempts, last_error) "
        "SELECT r.event_id, r.aggregatetype, r.aggregateid, r.type, r.payload, r.topic, r.headers, %s, 0, '' "
        "FROM json_to_recordset(%s::json) AS r(n integer, event_id uuid, aggregatetype text, aggregateid text, "
        "type text, payload jsonb, topic text, headers jsonb) ORDER BY r.n",
        [
            timezone.now(),
            bulk.json_rows(
                ("n", "event_id", "aggregatetype", "aggregateid", "type", "payload", "topic", "headers"), rows
            ),
        ],
    )
    kick_after_commit(context)
    return event_ids


class _RelayKick:
    """The on-commit callback; one per transaction however many events it records."""

    def __init__(self, context: str) -> None:
        self.context = context

    def __call__(self) -> None:
        kick_relay(self.context)


def kick_after_commit(context: str) -> None:
    """Kick the relay once the current transaction on `context` commits (at once in autocommit:
    a single statement has committed when it returns). One kick per transaction.

    With OUTBOX_RELAY_LISTEN nothing is needed: the commit's notification (messaging.notify)
    wakes the context's listening relay, whichever process it runs in."""
    if settings.OUTBOX_RELAY_LISTEN:
        return
    connection = transaction.get_connection(context)
    # A consumer batch or a saga step can record many events in one transaction: one kick is enough.
    if not any(isinstance(func, _RelayKick) for _sids, func, _robust in connection.run_on_commit):
        transaction.on_commit(_RelayKick(context), using=context)


class _RelayThread(threading.Thread):
    """Relays one context's outbox in this process whenever a commit wakes it.

    A thread, so the committing loop (a consumer) never waits for the broker's acknowledgements;
    commits that land while it relays are taken by its next run, together. It has its own
    database connection (Django's are per thread) and uses the process's shared producer.

    With OUTBOX_RELAY_LISTEN the commits that wake it are every process's: it LISTENs for the
    outbox's commit notifications on a connection of its own (messaging.notify), and relays once
    on (re)connecting for what committed before it listened. A lost connection is reopened after
    LISTEN_RETRY_SECONDS; meanwhile beat's one-second run relays."""

    LISTEN_POLL_SECONDS = 0.25  # how often a waiting listener looks at `wake` (stop, a local kick)
    LISTEN_RETRY_SECONDS = 1.0

    def __init__(self, context: str) -> None:
        super().__init__(name=f"relay-{context}", daemon=True)
        self.context = context
        self.wake = threading.Event()
        self.stopping = threading.Event()
        # Set once a LISTEN is in place and what committed before it was relayed (tests wait for it).
        self.listening = threading.Event()

    def run(self) -> None:
        from django.db import connections as thread_connections

        try:
            if settings.OUTBOX_RELAY_LISTEN:
                self._listen()
            else:
                self._on_wake()
        finally:
            thread_connections.close_all()

    def _on_wake(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            self._relay()
            if self.stopping.is_set() and not self.wake.is_set():
                return

    def _listen(self) -> None:
        listener = None
        try:
            while True:
                if listener is None:
                    listener = self._connect()
                    if listener is None:  # PostgreSQL unreachable: beat relays meanwhile
                        if self.stopping.wait(self.LISTEN_RETRY_SECONDS):
                            return
                        continue
                    self.wake.clear()
                    self._relay(listened=True)  # what committed before the LISTEN
                    self.listening.set()
                try:
                    heard = listener.wait(0 if self.wake.is_set() else self.LISTEN_POLL_SECONDS)
                except psycopg.Error:
                    log.warning("relay %s: lost the LISTEN connection; reconnecting", self.context, exc_info=True)
                    self.listening.clear()
                    listener.close()
                    listener = None
                    continue
                if heard or self.wake.is_set():
                    self.wake.clear()
                    self._relay(listened=True)
                if self.stopping.is_set() and not self.wake.is_set():
                    return  # after the run that stopping's wake asked for
        finally:
            self.listening.clear()
            if listener is not None:
                listener.close()

    def _connect(self) -> notify.Listener | None:
        try:
            listener = notify.Listener(alias=self.context, table=outbox_model(self.context)._meta.db_table)
        except psycopg.Error:
            log.warning("relay %s: cannot LISTEN for commits; retrying", self.context, exc_info=True)
            return None
        return listener

    def _relay(self, *, listened: bool = False) -> None:
        from orderflow.messaging.tasks import kick, relay_here

        if not relay_here(self.context, listened=listened):
            kick(self.context)


# This process's relay threads, by context: started by `inline_relay` (a consumer's context) or
# on a context's first commit once `relay_in_threads` was called (a web worker).
_inline: dict[str, _RelayThread] = {}
_on_demand = False
_threads_lock = threading.Lock()


@contextmanager
def inline_relay(context: str) -> Iterator[None]:
    """Within this block, a commit on `context` wakes a relay thread of this process instead of
    queueing a Celery task. The consume command runs its context's consumer inside it: nearly
    every event of the saga is recorded by a consumer, and a queued task costs more than the relay
    run itself (the kick's publish to Redis, the worker's dispatch, a second process waking).
    When a run fails or may have left rows, the Celery kick is sent as before; a run locked out by
    another relay is covered by that relay's hand-over (tasks.relay_with_handover); beat's
    one-second run stays the safety net. On leaving, the thread relays what is left and stops."""
    thread = _RelayThread(context)
    with _threads_lock:
        _inline[context] = thread
    thread.start()
    try:
        yield
    finally:
        with _threads_lock:
            del _inline[context]
        _stop(thread)


def relay_in_threads() -> None:
    """From now on every commit in this process wakes its context's relay thread (started on the
    context's first commit) instead of queueing a Celery task. Called in each gunicorn worker
    (deploy/gunicorn.conf.py): a request that places an order returns at once, and the worker's
    one relay thread per context takes the events of all its requests together."""
    global _on_demand
    _on_demand = True


def stop_relay_threads() -> None:
    """Stop the on-demand relay threads after a last run (tests). A process that just exits needs
    nothing: what a thread had not relayed is still in the outbox for beat's run."""
    global _on_demand
    with _threads_lock:
        _on_demand = False
        threads = list(_inline.values())
        _inline.clear()
    for thread in threads:
        _stop(thread)


def _stop(thread: _RelayThread) -> None:
    thread.stopping.set()
    thread.wake.set()  # one last run for whatever was committed
    thread.join(timeout=30)


def _relay_thread(context: str) -> _RelayThread | None:
    thread = _inline.get(context)
    if thread is not None or not _on_demand:
        return thread
    with _threads_lock:
        thread = _inline.get(context)
        if thread is None and _on_demand:
            thread = _inline[context] = _RelayThread(context)
            thread.start()
    return thread


def kick_relay(context: str) -> None:
    """Relay now: by this process's relay thread for the context if it has one (a consumer, a web
    worker), else through a worker; beat's one-second run is the safety net."""
    from orderflow.messaging.tasks import kick

    thread = _relay_thread(context)
    if thread is not None:
        thread.wake.set()
        return
    kick(context)

"""The notifications batch handler: a run of one kind's order events recorded set-based in the
consumer's batch transaction must leave exactly what `notification_record` leaves one by one —
notifications, contact placeholders, emails and NotificationSent rows with their causes' traces —
wait for and be waited for by contact registrations as the one-by-one path does, and apply
nothing twice on redelivery. Real PostgreSQL and broker; email through Django's locmem backend."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from contexts.notifications import services
from contexts.notifications.domain import Kind
from contexts.notifications.models import Contact, InboxEvent, Notification, OutboxEvent
from orderflow import tracing
from orderflow.messaging.consumer import ContextConsumer
from orderflow.messaging.envelope import Envelope
from orderflow.unit_of_work import all_or_nothing
from tests.fixtures.batches import Spy, send_in_order

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

DB = "notifications"
CONFIRMED = "orderflow.orders.OrderConfirmed.v1"
CANCELLED = "orderflow.orders.OrderCancelled.v1"
SHIPPED = "orderflow.orders.OrderShipped.v1"
DELIVERED = "orderflow.orders.OrderDelivered.v1"
TYPES = {
    CONFIRMED: Kind.ORDER_CONFIRMED,
    CANCELLED: Kind.ORDER_CANCELLED,
    SHIPPED: Kind.ORDER_SHIPPED,
    DELIVERED: Kind.ORDER_DELIVERED,
}

# The customers of every scenario: registered, registered then deactivated, and never seen.
KNOWN, GONE, NEW = uuid.UUID(int=0xC1), uuid.UUID(int=0xC2), uuid.UUID(int=0xC3)
DONE = uuid.UUID(int=0xD0)  # an order confirmed before the run


def details(kind: Kind, order_id: uuid.UUID, customer_id: uuid.UUID, amount: str = "19.00") -> dict:
    data = {"order_id": str(order_id), "customer_id": str(customer_id)}
    total = {"amount": amount, "currency": "USD"}
    if kind is Kind.ORDER_CONFIRMED:
        lines = [{"sku": "SKU-0001", "quantity": 2, "unit_price": {"amount": "9.50", "currency": "USD"}}]
        return {**data, "lines": lines, "total": total}
    if kind is Kind.ORDER_CANCELLED:
        return {**data, "reason": "payment_declined", "total": total}
    return data


def reset() -> None:
    """Start from the contacts of every scenario and one order already notified."""
    for model in (Notification, Contact, OutboxEvent):
        model.objects.using(DB).all().delete()
    mail.outbox.clear()
    with transaction.atomic(using=DB):
        services.contact_register(customer_id=KNOWN, email="ada@example.com", name="Ada")
        services.contact_register(customer_id=GONE, email="bob@example.com", name="Bob")
        services.contact_deactivate(customer_id=GONE)
    with tracing.use(trace_of("setup")), transaction.atomic(using=DB):
        kind = Kind.ORDER_CONFIRMED
        services.notification_record(order_id=DONE, customer_id=KNOWN, kind=kind, details=details(kind, DONE, KNOWN))


def trace_of(cause: str) -> tracing.TraceContext:
    """The same trace for the same cause in every run (the snapshots compare trace ids)."""
    trace_id = hashlib.md5(cause.encode()).hexdigest()
    return tracing.TraceContext(trace_id, "0" * 16, f"corr-{cause}", f"event-{cause}")


def snapshot(*, ordered: bool = True) -> dict:
    """What recording leaves: contacts, notifications in creation order, the outbox in relay order
    and the emails in sending order (sorted instead unless `ordered`). Notification ids are
    random: they read as order/kind."""
    keys = {str(n.id): f"{n.order_id}/{n.kind}" for n in Notification.objects.using(DB).all()}
    message_id = re.compile(r"notification-([0-9a-f-]{36})@")
    state = {
        "contacts": {c.customer_id: (c.email, c.name, c.active) for c in Contact.objects.using(DB).all()},
        "notifications": [
            (
                n.order_id,
                n.kind,
                n.customer_id,
                n.subject,
                n.body,
                n.to_email,
                bool(n.sent_at),
                n.attempts,
                n.last_error,
            )
            for n in Notification.objects.using(DB).order_by("created_at")
        ],
        "outbox": [
            (
                e.type,
                e.aggregatetype,
                keys[e.aggregateid],
                e.topic,
                {**e.payload, "notification_id": keys[e.payload["notification_id"]]},
                e.headers["correlation_id"],
                e.headers.get("causation_id"),
                e.headers["traceparent"][:35],  # the trace id; the span id is new per event
                (e.attempts, e.last_error, e.published_at, e.next_attempt_at),
            )
            for e in OutboxEvent.objects.using(DB).order_by("position")
        ],
        "mail": [
            (
                m.to,
                m.from_email,
                m.subject,
                m.body,
                message_id.sub(lambda g: f"notification-{keys[g[1]]}@", m.extra_headers["Message-ID"]),
            )
            for m in mail.outbox
        ],
    }
    if not ordered:
        state["outbox"], state["mail"] = sorted(state["outbox"], key=repr), sorted(state["mail"], key=repr)
    return state


# --- the service, one run at a time ------------------------------------------------------------------


def test_notifications_record_leaves_what_notification_record_leaves_one_by_one():
    o = [uuid.UUID(int=n) for n in range(1, 7)]
    confirmed, cancelled, shipped = Kind.ORDER_CONFIRMED, Kind.ORDER_CANCELLED, Kind.ORDER_SHIPPED
    runs = [
        (
            confirmed,
            [
                (o[0], KNOWN, "19.00"),  # sent
                (o[1], NEW, "19.00"),  # a placeholder contact; waits unaddressed
                (o[2], GONE, "19.00"),  # withheld from a deactivated customer
                (o[0], KNOWN, "99.00"),  # the same order again: the first one stands
                (DONE, KNOWN, "19.00"),  # notified before the run: nothing
                (o[3], NEW, "19.00"),  # the placeholder from above, one placeholder only
                (o[4], KNOWN, "19.00"),
            ],
        ),
        (cancelled, [(o[2], GONE, "5.00"), (o[1], NEW, "5.00"), (o[5], NEW, "5.00"), (o[5], NEW, "5.00")]),
        (shipped, [(o[0], KNOWN, ""), (o[2], GONE, ""), (o[4], KNOWN, "")]),
    ]
    traces = {(r, i): trace_of(f"{r}-{i}") for r, (_kind, events) in enumerate(runs) for i in range(len(events))}

    def run(apply: Callable[[], None]) -> tuple[dict, dict]:
        reset()
        apply()
        recorded = snapshot()
        # The customer seen first in the runs registers: what waited for them goes out, as it would
        # (in the order of their random ids, hence sorted).
        with tracing.use(trace_of("registration")), transaction.atomic(using=DB):
            services.contact_register(customer_id=NEW, email="new@example.com", name="Neo")
        return recorded, snapshot(ordered=False)

    def one_by_one() -> None:
        for r, (kind, events) in enumerate(runs):
            for i, (order_id, customer_id, amount) in enumerate(events):
                data = details(kind, order_id, customer_id, amount)
                with tracing.use(traces[r, i]), transaction.atomic(using=DB):
                    services.notification_record(order_id=order_id, customer_id=customer_id, kind=kind, details=data)

    outcomes = []

    def together() -> None:
        for r, (kind, events) in enumerate(runs):
            orders = [
                services.OrderToNotify(
                    order_id, customer_id, details(kind, order_id, customer_id, amount), traces[r, i]
                )
                for i, (order_id, customer_id, amount) in enumerate(events)
            ]
            with transaction.atomic(using=DB):
                outcomes.append(services.notifications_record(kind=kind, orders=orders))

    expected, expected_after = run(one_by_one)
    got, got_after = run(together)
    assert got == expected
    assert got_after == expected_after
    # The scenario really covers what it says.
    assert outcomes == [[o[0], o[1], o[2], o[3], o[4]], [o[2], o[1], o[5]], [o[0], o[2], o[4]]]
    assert expected["contacts"][NEW] == ("", "", True)  # one placeholder until the registration
    assert expected_after["contacts"][NEW] == ("new@example.com", "Neo", True)

    def sent(state: dict) -> list[tuple[str, str, str]]:
        return [(m[0][0], m[2].split()[-1], m[4].split("/")[0][-2:]) for m in state["mail"]]

    assert sent(expected) == [
        ("ada@example.com", "confirmed", "d0"),  # before the runs
        ("ada@example.com", "confirmed", "01"),
        ("ada@example.com", "confirmed", "05"),
        ("bob@example.com", "cancelled", "03"),  # a deactivated customer still hears about money
        ("ada@example.com", "way", "01"),
        ("ada@example.com", "way", "05"),
    ]
    waited = [("new@example.com", "cancelled", "02"), ("new@example.com", "cancelled", "06")]
    waited += [("new@example.com", "confirmed", "02"), ("new@example.com", "confirmed", "04")]
    assert sorted(set(sent(expected_after)) - set(sent(expected))) == waited
    assert "Total: 19.00 USD" in expected["mail"][1][3]  # the first event of o[0] was recorded
    withheld = [(n[0], n[1]) for n in expected_after["notifications"] if n[5] is None]
    assert withheld == [(o[2], "order_confirmed"), (o[2], "order_shipped")]
    # Each NotificationSent names the event that recorded its notification, in that event's trace.
    causes = [e[6] for e in expected["outbox"]]
    assert causes == ["event-setup", "event-0-0", "event-0-6", "event-1-0", "event-2-0", "event-2-2"]
    for e in got_after["outbox"]:
        cause = e[6].removeprefix("event-")
        assert (e[5], e[7]) == (f"corr-{cause}", trace_of(cause).traceparent[:35])


def test_a_run_takes_the_same_few_statements_whatever_its_length():
    def statements(n: int, kind: Kind) -> int:
        customers = [KNOWN, GONE, uuid.uuid4(), KNOWN]  # known, deactivated, unknown
        orders = [uuid.uuid4() for _ in range(n)]
        run = [
            services.OrderToNotify(order_id, customers[i % 4], details(kind, order_id, customers[i % 4]))
            for i, order_id in enumerate(orders)
        ]
        # As in the consumer's batch transaction: no savepoint around the use case.
        with all_or_nothing(DB), CaptureQueriesContext(connections[DB]) as queries:
            services.notifications_record(kind=kind, orders=run)
        return len(queries)

    reset()
    # The notifications read, the contacts' lock, the placeholders, the notifications' INSERT.
    assert statements(4, Kind.ORDER_CONFIRMED) == statements(40, Kind.ORDER_CANCELLED) == 4
    with all_or_nothing(DB), CaptureQueriesContext(connections[DB]) as queries:
        order_id = uuid.uuid4()
        run = [services.OrderToNotify(order_id, KNOWN, details(Kind.ORDER_SHIPPED, order_id, KNOWN))]
        services.notifications_record(kind=Kind.ORDER_SHIPPED, orders=run * 3)
    assert len(queries) == 3  # every contact known: no placeholder statement


# --- the races with the contact replica ---------------------------------------------------------------


def _backend_pid() -> int:
    with connections[DB].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _wait_until_waiting_for_a_lock(pid: int) -> None:
    with connections[DB].cursor() as cursor:
        for _ in range(200):
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.05)
    raise AssertionError(f"backend {pid} never waited for a lock")


class InThread(threading.Thread):
    """Runs `work` in its own connection and tells its backend pid first."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__()
        self.work, self.pid, self.started_work, self.error = work, 0, threading.Event(), None

    def run(self) -> None:
        try:
            self.pid = _backend_pid()
            self.started_work.set()
            self.work()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connections[DB].close()


def _confirm_together(order_id: uuid.UUID, customer_id: uuid.UUID) -> list[uuid.UUID]:
    kind = Kind.ORDER_CONFIRMED
    run = [services.OrderToNotify(order_id, customer_id, details(kind, order_id, customer_id))]
    with transaction.atomic(using=DB):
        return services.notifications_record(kind=kind, orders=run)


def test_a_registration_waits_for_the_run_that_created_the_placeholder_and_then_sends():
    reset()
    customer_id, order_id = uuid.uuid4(), uuid.uuid4()
    kind = Kind.ORDER_CONFIRMED
    register = InThread(
        lambda: services.contact_register(customer_id=customer_id, email="late@example.com", name="Late")
    )
    with transaction.atomic(using=DB):
        run = [services.OrderToNotify(order_id, customer_id, details(kind, order_id, customer_id))]
        assert services.notifications_record(kind=kind, orders=run) == [order_id]
        register.start()
        assert register.started_work.wait(10)
        _wait_until_waiting_for_a_lock(register.pid)  # on our uncommitted placeholder
        assert mail.outbox[1:] == []
    register.join(10)
    assert register.error is None
    [message] = mail.outbox[1:]
    assert message.to == ["late@example.com"] and "Hello there," in message.body  # rendered before the name came
    assert Notification.objects.using(DB).get(order_id=order_id).sent_at is not None


@pytest.mark.parametrize("contact", ["a placeholder", "none"])
def test_a_run_waits_for_a_registration_in_progress_and_addresses_the_notification(contact):
    reset()
    customer_id, order_id = uuid.uuid4(), uuid.uuid4()
    if contact == "a placeholder":  # the customer's earlier order was seen first
        _confirm_together(uuid.uuid4(), customer_id)
    registered, release = threading.Event(), threading.Event()

    def register() -> None:
        with transaction.atomic(using=DB):
            services.contact_register(customer_id=customer_id, email="ada2@example.com", name="Ada")
            registered.set()
            release.wait(10)

    registration = InThread(register)
    registration.start()
    assert registered.wait(10)
    outcome = []
    run = InThread(lambda: outcome.append(_confirm_together(order_id, customer_id)))
    run.start()
    assert run.started_work.wait(10)
    _wait_until_waiting_for_a_lock(run.pid)  # the contact's lock, or the registration's INSERT
    release.set()
    for thread in (registration, run):
        thread.join(10)
        assert thread.error is None
    assert outcome == [[order_id]]
    notification = Notification.objects.using(DB).get(order_id=order_id)
    assert notification.to_email == "ada2@example.com" and notification.sent_at is not None
    assert "Hello Ada," in notification.body
    assert Contact.objects.using(DB).get(customer_id=customer_id).email == "ada2@example.com"


# --- through the consumer, on the real broker --------------------------------------------------------


def envelope(type_: str, order_id: uuid.UUID, customer_id: uuid.UUID, event_id: str | None = None) -> Envelope:
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type=type_,
        source="/orderflow/orders",
        subject=str(order_id),
        time=datetime.now(UTC),
        data=details(TYPES[type_], order_id, customer_id),
        traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        correlation_id=f"corr-{order_id}",
    )


def mixed_stream() -> list[Envelope]:
    o = [uuid.uuid4() for _ in range(5)]
    first = envelope(CONFIRMED, o[0], KNOWN)
    return [
        first,
        envelope(CONFIRMED, o[1], NEW),  # unknown customer: a placeholder, unaddressed
        envelope(CONFIRMED, o[2], GONE),  # deactivated: withheld
        first,  # the same event again: skipped by the inbox
        envelope(CONFIRMED, o[0], KNOWN),  # the same order, a new event id: no effect
        envelope(CONFIRMED, DONE, KNOWN),  # notified before: no effect
        envelope(CONFIRMED, o[3], NEW),
        envelope(CANCELLED, o[2], GONE),  # sent even to a deactivated customer
        envelope(CANCELLED, o[1], NEW),
        envelope(SHIPPED, o[0], KNOWN),
        envelope(SHIPPED, o[2], GONE),
        envelope(DELIVERED, o[0], KNOWN),
        envelope(CONFIRMED, o[4], KNOWN),
        envelope(CONFIRMED, o[4], KNOWN),  # a duplicate publish within a run
    ]


def test_a_mixed_batch_through_the_batch_handler_equals_one_by_one_and_redelivery_is_a_no_op(kafka_ns):
    events = mixed_stream()
    send_in_order(events)

    reset()
    one_by_one = ContextConsumer(DB, group_id=f"one-{uuid.uuid4().hex[:8]}", batch_handlers={})
    one_by_one.run(idle_exit_after=3.0)
    expected = snapshot()

    reset()
    spy = Spy(DB)
    name = f"batch-{uuid.uuid4().hex[:8]}"
    batched = ContextConsumer(DB, group_id=name, batch_handlers=spy.handlers())
    assert batched.handlers == one_by_one.handlers  # the context's own one-by-one handlers
    assert set(batched.batch_handlers) == {CONFIRMED, CANCELLED, SHIPPED, DELIVERED}
    batched.run(idle_exit_after=3.0)
    got = snapshot()

    assert (batched.applied, batched.skipped) == (one_by_one.applied, one_by_one.skipped) == (13, 1)
    # Everything alike, the traces too: each NotificationSent continues the event that recorded it.
    assert got == expected
    assert [m[0][0] for m in got["mail"]] == ["ada@example.com"] * 2 + ["bob@example.com"] + ["ada@example.com"] * 3
    for reply in got["outbox"][1:]:
        cause = next(e for e in events if e.id == reply[6])
        assert reply[4]["order_id"] == cause.data["order_id"] and reply[4]["kind"] == TYPES[cause.type].value
        assert reply[5] == cause.correlation_id and reply[7] == cause.traceparent[:35]
    assert len(got["outbox"]) == 1 + 5
    # The batch handler did the work, in stream order, runs split where the type changes.
    fresh = [(e.type, e.data["order_id"]) for i, e in enumerate(events) if i != 3]
    assert [(type_, order_id) for type_, run in spy.runs for order_id in run] == fresh
    assert len(spy.runs) >= 5 and max(len(run) for _type, run in spy.runs) > 1

    # Redelivered from the start (a new Kafka group, the same inbox name): nothing applies twice.
    again = ContextConsumer(DB, group_id=name, batch_handlers=spy.handlers(), config={"group.id": f"{name}-2"})
    again.run(idle_exit_after=3.0)
    assert (again.applied, again.skipped) == (0, len(events))
    assert snapshot() == got
    assert InboxEvent.objects.using(DB).filter(consumer=name).count() == 13

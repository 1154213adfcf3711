"""Payments batch handlers: runs of OrderPlaced, OrderConfirmed and OrderCancelled applied set-based
must leave exactly what payment_authorize, payment_capture and payment_cancel leave one by one —
payments, gateway calls, events with their traces, warnings — serialize each order like them,
isolate a failing record, and apply nothing twice."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from contexts.payments import services
from contexts.payments.domain import payment_id_for
from contexts.payments.models import DeadLetter, InboxEvent, OutboxEvent, Payment
from orderflow import tracing
from orderflow.domain import Money
from orderflow.messaging.consumer import ContextConsumer
from orderflow.messaging.envelope import Envelope
from orderflow.unit_of_work import all_or_nothing
from tests.fixtures.batches import Spy, send_in_order
from tests.fixtures.gateway import RecordingGateway, install

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

DB = "payments"
PLACED = "orderflow.orders.OrderPlaced.v1"
CONFIRMED = "orderflow.orders.OrderConfirmed.v1"
CANCELLED = "orderflow.orders.OrderCancelled.v1"


@pytest.fixture(autouse=True)
def gateway(settings):
    return install(settings)


@pytest.fixture
def warnings(caplog):
    """The services' warnings, as logged."""
    caplog.set_level(logging.WARNING, logger=services.__name__)

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == services.__name__]

    return logged


def reset() -> None:
    Payment.objects.using(DB).all().delete()
    OutboxEvent.objects.using(DB).all().delete()
    RecordingGateway.calls.clear()


def snapshot() -> dict:
    """What payments leave behind: payments, gateway calls, and the outbox in relay order. Payment
    ids are random, so they are replaced by their order's everywhere."""
    payments = list(Payment.objects.using(DB).order_by("order_id"))
    named = {str(p.id): f"payment of {p.order_id}" for p in payments}
    return {
        "payments": {p.order_id: (p.customer_id, p.amount, p.currency, p.status, p.decline_reason) for p in payments},
        "gateway": [(call, named.get(reference, reference)) for call, reference in RecordingGateway.calls],
        "outbox": [
            (
                e.type,
                e.aggregatetype,
                named[e.aggregateid],
                e.topic,
                {**e.payload, "payment_id": named[e.payload["payment_id"]]},
                e.headers["correlation_id"],
                e.headers.get("causation_id"),
                e.headers["traceparent"][:35],  # the trace id; the span id is new per event
                (e.attempts, e.last_error, e.published_at, e.next_attempt_at),
            )
            for e in OutboxEvent.objects.using(DB).order_by("position")
        ],
    }


def traced(n: int) -> tracing.TraceContext:
    """The trace a consumed event gives its handler: the producer's, caused by the event."""
    return tracing.new_root(correlation_id=f"corr-{n}").child(causation_id=f"event-{n}")


def test_orders_authorize_leaves_what_payment_authorize_leaves_one_by_one(warnings):
    o = [uuid.UUID(int=n) for n in range(1, 9)]
    earlier = o[7]  # has a payment before the run: left untouched, the gateway is not asked
    customers = {order_id: uuid.UUID(int=100 + n) for n, order_id in enumerate(o)}
    requests = [
        (o[0], "42.50", "USD", "tok_visa"),  # authorized
        (o[1], "10.00", "USD", "tok_declined"),  # card_declined
        (o[2], "10.00", "USD", "tok_insufficient_funds"),  # insufficient_funds
        (o[3], "5000.01", "USD", "tok_visa"),  # over the configured limit (5000.00)
        (o[4], "10.00", "EUR", "tok_nonsense"),  # an unknown token: card_declined
        (o[0], "99.00", "USD", "tok_declined"),  # the same order again: the first payment stands
        (earlier, "1.00", "USD", "tok_declined"),
        (o[5], "5000.00", "EUR", "tok_visa"),  # exactly the limit: authorized
        (o[6], "5000.01", "USD", "tok_declined"),  # the limit comes before the card: over_limit
    ]
    traces = [traced(n) for n in range(len(requests))]
    earlier_trace = traced(99)

    def run(apply) -> dict:
        reset()
        with tracing.use(earlier_trace), transaction.atomic(using=DB):
            services.payment_authorize(
                order_id=earlier, customer_id=customers[earlier], amount=Money.of("7.00", "USD"), card_token="tok_visa"
            )
        apply()
        return snapshot()

    def one_by_one() -> None:
        for (order_id, amount, currency, token), trace in zip(requests, traces, strict=True):
            with tracing.use(trace), transaction.atomic(using=DB):
                services.payment_authorize(
                    order_id=order_id,
                    customer_id=customers[order_id],
                    amount=Money.of(amount, currency),
                    card_token=token,
                )

    new = []

    def together() -> None:
        orders = [
            services.OrderToAuthorize(order_id, customers[order_id], Money.of(amount, currency), token, trace)
            for (order_id, amount, currency, token), trace in zip(requests, traces, strict=True)
        ]
        with transaction.atomic(using=DB):
            new.extend(services.orders_authorize(orders=orders))

    expected = run(one_by_one)
    got = run(together)
    assert got == expected
    assert warnings() == []
    # The scenario really covers what it says.
    assert [p.order_id for p in new] == o[:7]
    statuses = {order_id: (status, reason) for order_id, (*_, status, reason) in expected["payments"].items()}
    assert statuses == {
        o[0]: ("AUTHORIZED", ""),
        o[1]: ("DECLINED", "card_declined"),
        o[2]: ("DECLINED", "insufficient_funds"),
        o[3]: ("DECLINED", "over_limit"),
        o[4]: ("DECLINED", "card_declined"),
        o[5]: ("AUTHORIZED", ""),
        o[6]: ("DECLINED", "over_limit"),
        earlier: ("AUTHORIZED", ""),
    }
    assert expected["payments"][o[0]][1:3] == (Money.of("42.50", "USD").amount, "USD")
    assert [call for call, _payment in expected["gateway"]] == ["authorize"] * 8  # one per payment
    replies = [(e[0].split(".")[2], e[4]["order_id"], e[4].get("reason")) for e in got["outbox"]]
    assert replies[1:] == [
        ("PaymentAuthorized", str(o[0]), None),
        ("PaymentDeclined", str(o[1]), "card_declined"),
        ("PaymentDeclined", str(o[2]), "insufficient_funds"),
        ("PaymentDeclined", str(o[3]), "over_limit"),
        ("PaymentDeclined", str(o[4]), "card_declined"),
        ("PaymentAuthorized", str(o[5]), None),
        ("PaymentDeclined", str(o[6]), "over_limit"),
    ]
    # Each reply carries its cause's trace: the first request of an order, never the duplicate's.
    causes = (0, 1, 2, 3, 4, 7, 8)
    assert [e[5:8] for e in got["outbox"][1:]] == [
        (f"corr-{n}", f"event-{n}", traces[n].traceparent[:35]) for n in causes
    ]


def test_orders_capture_and_cancel_leave_what_payment_capture_and_cancel_leave_one_by_one(warnings):
    a, b, c, d, e, f, missing = (uuid.UUID(int=n) for n in range(1, 8))
    setup = [  # before the runs, one by one: (order, token, then)
        (a, "tok_visa", None),
        (b, "tok_visa", "capture"),
        (c, "tok_declined", None),
        (d, "tok_visa", None),
        (e, "tok_visa", None),
        (f, "tok_visa", "cancel"),
    ]
    runs = [
        # a captured; c declined (warned); a again: silent; missing (warned); b already captured:
        # silent; d captured; f voided (warned)
        ("capture", [a, c, a, missing, b, d, f]),
        # a and b refunded, e voided; c declined and f voided hold nothing; missing (warned); e again
        ("cancel", [a, e, c, missing, e, f, b]),
        ("capture", [e, a, d]),  # e voided and a refunded (warned); d already captured
    ]
    traces = {order_id: traced(order_id.int) for order_id in (a, b, c, d, e, f, missing)}

    def run(apply) -> dict:
        reset()
        for order_id, token, then in setup:
            with tracing.use(traces[order_id]), transaction.atomic(using=DB):
                services.payment_authorize(
                    order_id=order_id, customer_id=order_id, amount=Money.of("12.34", "USD"), card_token=token
                )
                if then == "capture":
                    services.payment_capture(order_id=order_id)
                elif then == "cancel":
                    services.payment_cancel(order_id=order_id)
        apply()
        return snapshot()

    def one_by_one() -> None:
        for kind, order_ids in runs:
            service = services.payment_capture if kind == "capture" else services.payment_cancel
            for order_id in order_ids:
                with tracing.use(traces[order_id]), transaction.atomic(using=DB):
                    service(order_id=order_id)

    changed = []

    def together() -> None:
        for kind, order_ids in runs:
            service = services.orders_capture if kind == "capture" else services.orders_cancel
            with transaction.atomic(using=DB):
                changed.append(service(orders=[services.OrderRef(o, traces[o]) for o in order_ids]))

    expected = run(one_by_one)
    expected_warnings = warnings()
    got = run(together)
    assert got == expected
    assert warnings()[len(expected_warnings) :] == expected_warnings
    # The scenario really covers what it says.
    assert changed == [[a, d], [a, e, b], []]
    statuses = {order_id: status for order_id, (*_, status, _reason) in expected["payments"].items()}
    assert statuses == {a: "REFUNDED", b: "REFUNDED", c: "DECLINED", d: "CAPTURED", e: "VOIDED", f: "VOIDED"}
    assert expected_warnings == [
        f"order {c} confirmed while its payment is DECLINED: nothing captured",
        f"order {missing} confirmed while its payment is None: nothing captured",
        f"order {f} confirmed while its payment is VOIDED: nothing captured",
        f"order {missing} cancelled but it has no payment: nothing to void or refund",
        f"order {e} confirmed while its payment is VOIDED: nothing captured",
        f"order {a} confirmed while its payment is REFUNDED: nothing captured",
    ]
    calls = [(call, payment[len("payment of ") :]) for call, payment in expected["gateway"][8:]]
    assert calls == [("capture", str(a)), ("capture", str(d)), ("refund", str(a)), ("void", str(e)), ("refund", str(b))]
    replies = [(r[0].split(".")[2], r[4]["order_id"], r[6]) for r in got["outbox"][8:]]
    assert replies == [
        ("PaymentCaptured", str(a), f"event-{a.int}"),
        ("PaymentCaptured", str(d), f"event-{d.int}"),
        ("PaymentRefunded", str(a), f"event-{a.int}"),
        ("PaymentVoided", str(e), f"event-{e.int}"),
        ("PaymentRefunded", str(b), f"event-{b.int}"),
    ]


def test_a_run_costs_the_same_statements_however_long_it_is():
    """The point of the batch functions: statements per run, not per event — the order locks
    (authorize, cancel), one read and one write of the payments, one write of the outbox."""

    def statements(size: int) -> dict[str, int]:
        reset()
        refs = [services.OrderRef(uuid.uuid4()) for _ in range(size)]
        placed = [
            services.OrderToAuthorize(r.order_id, uuid.uuid4(), Money.of("5.00", "USD"), "tok_visa") for r in refs
        ]
        counts = {}
        for name, apply in [
            ("authorize", lambda: services.orders_authorize(orders=placed)),
            ("capture", lambda: services.orders_capture(orders=refs)),
            ("cancel", lambda: services.orders_cancel(orders=refs)),
        ]:
            with CaptureQueriesContext(connections[DB]) as queries, all_or_nothing(DB):
                apply()
            # Django logs the transaction's BEGIN and COMMIT too: those are the consumer's.
            counts[name] = len([q for q in queries.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")])
        return counts

    assert statements(2) == statements(40) == {"authorize": 4, "capture": 3, "cancel": 4}
    assert Payment.objects.using(DB).filter(status="REFUNDED").count() == 40


def waiting_on_locks(count: int, timeout: float = 10.0) -> bool:
    """Wait until `count` sessions of the payments database wait on a lock."""
    deadline = time.monotonic() + timeout
    with connections[DB].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] == count:
                return True
            time.sleep(0.02)
    return False


def test_a_run_waits_for_an_authorization_in_flight_of_one_of_its_orders(gateway):
    """A run takes the one-by-one path's order locks: while one run is at the gateway, neither a
    one-by-one authorization nor another run of any of its orders gets there, and each order is
    authorized once."""
    gateway.hold = threading.Event()
    x, y, z = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    done: list[str] = []

    def in_thread(name: str, work) -> threading.Thread:
        def run() -> None:
            try:
                work()
                done.append(name)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def authorize_run(*order_ids: uuid.UUID):
        return lambda: services.orders_authorize(
            orders=[services.OrderToAuthorize(o, o, Money.of("3.00", "USD"), "tok_visa") for o in order_ids]
        )

    first = in_thread("run y x", authorize_run(y, x))
    while not gateway.calls:  # the first run holds x and y and waits at the gateway
        threading.Event().wait(0.01)
    single = in_thread(
        "one x",
        lambda: services.payment_authorize(
            order_id=x, customer_id=x, amount=Money.of("3.00", "USD"), card_token="tok_declined"
        ),
    )
    second = in_thread("run z x y", authorize_run(z, x, y))
    assert waiting_on_locks(2), "both must wait for the first run's locks"
    assert len(gateway.calls) == 1 and single.is_alive() and second.is_alive()
    gateway.hold.set()
    for thread in (first, single, second):
        thread.join(10)
    assert sorted(done) == ["one x", "run y x", "run z x y"]
    payments = Payment.objects.using(DB)
    assert sorted(payments.values_list("order_id", "status")) == sorted(
        [(x, "AUTHORIZED"), (y, "AUTHORIZED"), (z, "AUTHORIZED")]
    )
    assert sorted(ref for _call, ref in gateway.calls) == sorted(str(p.id) for p in payments)  # once per order
    assert OutboxEvent.objects.using(DB).count() == 3


# --- through the consumer, on the real broker --------------------------------------------------------


def envelope(type_: str, order_id: uuid.UUID, data: dict, event_id: str | None = None) -> Envelope:
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type=type_,
        source="/orderflow/orders",
        subject=str(order_id),
        time=datetime.now(UTC),
        data={"order_id": str(order_id), "customer_id": str(order_id), **data},
        traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        correlation_id=f"corr-{order_id}",
    )


LINES = [{"sku": "SKU-A", "quantity": 1, "unit_price": {"amount": "1.00", "currency": "USD"}}]


def placed(order_id: uuid.UUID, token: str = "tok_visa", amount: str = "20.00", event_id: str | None = None):
    data = {"lines": LINES, "total": {"amount": amount, "currency": "USD"}, "card_token": token}
    return envelope(PLACED, order_id, data, event_id)


def confirmed(order_id: uuid.UUID) -> Envelope:
    return envelope(CONFIRMED, order_id, {"lines": LINES, "total": {"amount": "20.00", "currency": "USD"}})


def cancelled(order_id: uuid.UUID) -> Envelope:
    return envelope(CANCELLED, order_id, {"reason": "customer", "total": {"amount": "20.00", "currency": "USD"}})


def mixed_stream() -> list[Envelope]:
    o = [uuid.uuid4() for _ in range(8)]
    first = placed(o[0])
    return [
        first,
        placed(o[1], "tok_declined"),
        placed(o[2], amount="6000.00"),  # over the limit
        first,  # the same event again: skipped
        placed(o[0], "tok_declined", event_id=str(uuid.uuid4())),  # the same order, a new event: no effect
        cancelled(o[0]),  # voided: a run of another type between two runs of OrderPlaced
        placed(o[3]),
        placed(o[4], "tok_insufficient_funds"),
        confirmed(o[3]),  # captured
        confirmed(o[1]),  # declined: warned, nothing captured
        confirmed(o[0]),  # voided: warned
        confirmed(o[3]),  # again: nothing
        cancelled(o[3]),  # refunded
        placed(o[5]),
        confirmed(o[5]),
        confirmed(o[6]),  # no payment: warned
        cancelled(o[7]),  # no payment: warned
        placed(o[7]),  # authorized after its cancellation, as one by one would
    ]


def test_a_mixed_batch_through_the_batch_handlers_equals_one_by_one_and_redelivery_is_a_no_op(kafka_ns, warnings):
    events = mixed_stream()
    send_in_order(events)

    reset()
    one_by_one = ContextConsumer(DB, group_id=f"one-{uuid.uuid4().hex[:8]}", batch_handlers={})
    one_by_one.run(idle_exit_after=3.0)
    expected = snapshot()
    expected_warnings = warnings()

    reset()
    spy = Spy(DB)
    name = f"batch-{uuid.uuid4().hex[:8]}"
    batched = ContextConsumer(DB, group_id=name, batch_handlers=spy.handlers())
    assert batched.handlers == one_by_one.handlers  # the context's own one-by-one handlers
    assert set(batched.batch_handlers) == {PLACED, CONFIRMED, CANCELLED}
    batched.run(idle_exit_after=3.0)
    got = snapshot()

    assert (batched.applied, batched.skipped, batched.dead_lettered) == (17, 1, 0)
    assert (one_by_one.applied, one_by_one.skipped, one_by_one.dead_lettered) == (17, 1, 0)
    assert got == expected
    assert warnings()[len(expected_warnings) :] == expected_warnings and len(expected_warnings) == 4
    statuses = sorted(status for *_, status, _reason in got["payments"].values())
    assert statuses == ["AUTHORIZED", "CAPTURED", "DECLINED", "DECLINED", "DECLINED", "REFUNDED", "VOIDED"]
    assert len(got["outbox"]) == 7 + 2 + 2  # 7 payments, 2 captures, a void and a refund
    for reply in got["outbox"]:
        cause = next(e for e in events if e.id == reply[6])
        assert cause.data["order_id"] == reply[4]["order_id"]
        assert reply[5] == cause.correlation_id and reply[7] == cause.traceparent[:35]
    # The batch handlers did the work, in stream order, runs split where the type changes.
    fresh = [(e.type, e.data["order_id"]) for i, e in enumerate(events) if i != 3]
    assert [(type_, order_id) for type_, run in spy.runs for order_id in run] == fresh
    assert len(spy.runs) >= 8 and max(len(run) for _type, run in spy.runs) > 1

    # Redelivered from the start (a new Kafka group, the same inbox name): nothing applies twice,
    # and the gateway is not called again.
    again = ContextConsumer(DB, group_id=name, batch_handlers=spy.handlers(), config={"group.id": f"{name}-2"})
    again.run(idle_exit_after=3.0)
    assert (again.applied, again.skipped) == (0, len(events))
    assert snapshot() == got
    assert InboxEvent.objects.using(DB).filter(consumer=name).count() == 17


def test_a_failing_record_in_a_batch_is_isolated_and_the_batch_effects_are_not_doubled(kafka_ns, gateway):
    reset()
    good = [placed(uuid.uuid4(), amount=f"{n + 1}.00") for n in range(4)]
    bad = placed(uuid.uuid4(), amount="0.00")  # valid by the contract, refused by the domain
    send_in_order([good[0], good[1], bad, good[2], good[3]])
    spy = Spy(DB)
    consumer = ContextConsumer(DB, batch_handlers=spy.handlers(), retry_delays=[])
    consumer.run(idle_exit_after=3.0)

    bad_order = bad.data["order_id"]
    failed_run = next(run for _type, run in spy.runs if bad_order in run)  # tried in a batch first
    assert (consumer.applied, consumer.dead_lettered) == (4, 1)
    payments = {str(p.order_id): p for p in Payment.objects.using(DB).all()}
    assert sorted(payments) == sorted(e.data["order_id"] for e in good)
    assert {p.status for p in payments.values()} == {"AUTHORIZED"}
    rows = OutboxEvent.objects.using(DB).order_by("position")
    assert [row.payload["order_id"] for row in rows] == [e.data["order_id"] for e in good]
    assert DeadLetter.objects.using(DB).get().event_id == bad.id
    # The batch reached the gateway for the orders before the bad one and was rolled back; one by
    # one then authorized each good order again — under the same reference (the payment id derives
    # from the order's), so a real processor sees one authorization per order, retried.
    kept = {str(p.id) for p in payments.values()}
    assert kept == {str(payment_id_for(uuid.UUID(e.data["order_id"]))) for e in good}
    references = [ref for call, ref in gateway.calls if call == "authorize"]
    assert set(references) == kept
    twice = failed_run[: failed_run.index(bad_order)]
    assert sorted(references) == sorted([*kept, *(str(payment_id_for(uuid.UUID(o))) for o in twice)])

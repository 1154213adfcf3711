"""Batch handlers: a run of one event type applied set-based in the consumer's batch transaction
must leave exactly what the one-by-one handler leaves, isolate a failing record, and apply nothing
twice on redelivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import transaction

from contexts.inventory import handlers, services
from contexts.inventory.models import DeadLetter, InboxEvent, OutboxEvent, Reservation, StockItem
from contracts import ContractError
from orderflow import tracing
from orderflow.messaging.consumer import ContextConsumer, Event
from orderflow.messaging.envelope import Envelope
from tests.fixtures.batches import Spy, send_in_order

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

DB = "inventory"
PLACED = "orderflow.orders.OrderPlaced.v1"
CANCELLED = "orderflow.orders.OrderCancelled.v1"
CONFIRMED = "orderflow.orders.OrderConfirmed.v1"
STOCK = {"SKU-A": 5, "SKU-B": 3, "SKU-C": 100}


def reset_stock() -> None:
    Reservation.objects.using(DB).all().delete()
    OutboxEvent.objects.using(DB).all().delete()
    StockItem.objects.using(DB).all().delete()
    StockItem.objects.using(DB).bulk_create([StockItem(sku=sku, on_hand=n) for sku, n in STOCK.items()])


def snapshot() -> dict:
    """What reservations leave behind: stock, reservations, and the outbox in relay order."""
    return {
        "stock": {i.sku: (i.on_hand, i.reserved) for i in StockItem.objects.using(DB).order_by("sku")},
        "reservations": {r.order_id: (r.status, r.lines) for r in Reservation.objects.using(DB).all()},
        "outbox": [
            (
                e.type,
                e.aggregatetype,
                e.aggregateid,
                e.topic,
                e.payload,
                e.headers["correlation_id"],
                e.headers.get("causation_id"),
                e.headers["traceparent"][:35],  # the trace id; the span id is new per event
                (e.attempts, e.last_error, e.published_at, e.next_attempt_at),
            )
            for e in OutboxEvent.objects.using(DB).order_by("position")
        ],
    }


def lines(*pairs: tuple[str, int]) -> list[dict]:
    return [{"sku": sku, "quantity": q, "unit_price": {"amount": "1.00", "currency": "USD"}} for sku, q in pairs]


def test_orders_reserve_leaves_what_order_reserve_leaves_one_by_one():
    ids = [uuid.UUID(int=n) for n in range(1, 9)]
    earlier = ids[7]  # reserved before the batch: its reservation wins over the batch's request
    requests = [
        (ids[0], lines(("SKU-A", 2), ("SKU-B", 1))),  # reserved
        (ids[1], lines(("SKU-A", 2))),  # reserved: 4 of 5 A now
        (ids[2], lines(("SKU-A", 2), ("SKU-C", 1))),  # out of stock (1 A left): nothing reserved, not even C
        (ids[3], lines(("SKU-B", 1), ("SKU-Z", 1))),  # unknown sku
        (ids[4], lines(("SKU-A", 1))),  # the last A: the rejections above reserved nothing
        (ids[0], lines(("SKU-C", 50))),  # the same order again: the first outcome stands
        (ids[5], lines(("SKU-B", 1), ("SKU-B", 1))),  # one sku on two lines: one demand of 2
        (ids[6], lines(("SKU-B", 1))),  # B is gone now: 3 - 1 - 2
        (earlier, lines(("SKU-C", 1))),
    ]
    traces = [tracing.new_root(correlation_id=f"corr-{n}").child(causation_id=f"event-{n}") for n in range(9)]

    def run(apply) -> dict:
        reset_stock()
        with tracing.use(traces[8]), transaction.atomic(using=DB):
            services.order_reserve(order_id=earlier, lines=lines(("SKU-C", 7)))
        apply()
        return snapshot()

    def one_by_one() -> None:
        for (order_id, wanted), trace in zip(requests, traces, strict=True):
            with tracing.use(trace), transaction.atomic(using=DB):
                services.order_reserve(order_id=order_id, lines=wanted)

    outcomes = []

    def together() -> None:
        orders = [services.OrderToReserve(o, w, t) for (o, w), t in zip(requests, traces, strict=True)]
        with transaction.atomic(using=DB):
            outcomes.extend(services.orders_reserve(orders=orders))

    expected = run(one_by_one)
    got = run(together)
    assert got == expected
    # The scenario really covers what it says.
    assert [o.order_id for o in outcomes] == ids[:7]
    assert [o.reserved for o in outcomes] == [True, True, False, False, True, True, False]
    assert expected["stock"] == {"SKU-A": (5, 5), "SKU-B": (3, 3), "SKU-C": (100, 7)}
    reasons = [e[4].get("reason") for e in expected["outbox"]]
    assert reasons == [None, None, None, "out_of_stock", "unknown_sku", None, None, "out_of_stock"]
    assert [e[6] for e in got["outbox"][1:]] == [f"event-{n}" for n in (0, 1, 2, 3, 4, 6, 7)]


def test_orders_commit_and_release_leave_what_order_commit_and_release_leave_one_by_one():
    r = [uuid.UUID(int=n) for n in range(1, 7)]
    missing = r[5]  # never reserved
    reservations = [
        (r[0], ("SKU-A", 2)),
        (r[1], ("SKU-B", 1)),
        (r[2], ("SKU-A", 5)),
        (r[3], ("SKU-C", 3)),
        (r[4], ("SKU-C", 1)),
    ]
    runs = [  # r[2] is rejected (only 3 A left when it comes)
        ("commit", [r[0], r[2], missing, r[0], r[3]]),
        ("release", [r[1], r[3], r[3], r[2], missing]),  # r[3] is committed: restocked
        ("commit", [r[1], r[4]]),  # r[1] is released now: never commits
    ]
    traces = {o: tracing.new_root(correlation_id=f"corr-{o.int}").child(causation_id=f"event-{o.int}") for o in r}

    def run(apply) -> dict:
        reset_stock()
        for order_id, wanted in reservations:
            with tracing.use(traces[order_id]), transaction.atomic(using=DB):
                services.order_reserve(order_id=order_id, lines=lines(wanted))
        apply()
        return snapshot()

    def one_by_one() -> None:
        for kind, order_ids in runs:
            service = services.order_commit if kind == "commit" else services.order_release
            for order_id in order_ids:
                with tracing.use(traces[order_id]), transaction.atomic(using=DB):
                    service(order_id=order_id)

    changed = []

    def together() -> None:
        for kind, order_ids in runs:
            service = services.orders_commit if kind == "commit" else services.orders_release
            with transaction.atomic(using=DB):
                changed.append(service(orders=[services.OrderRef(o, traces[o]) for o in order_ids]))

    expected = run(one_by_one)
    got = run(together)
    assert got == expected
    assert changed == [[r[0], r[3]], [r[1], r[3]], [r[4]]]
    assert expected["stock"] == {"SKU-A": (3, 0), "SKU-B": (3, 0), "SKU-C": (99, 0)}
    statuses = {order_id: status for order_id, (status, _lines) in expected["reservations"].items()}
    assert statuses == {r[0]: "COMMITTED", r[1]: "RELEASED", r[2]: "REJECTED", r[3]: "RELEASED", r[4]: "COMMITTED"}
    replies = [(e[0].split(".")[2], e[2], e[4].get("restocked")) for e in expected["outbox"][5:]]
    assert replies == [
        ("StockCommitted", str(r[0]), None),
        ("StockCommitted", str(r[3]), None),
        ("StockReleased", str(r[1]), False),
        ("StockReleased", str(r[3]), True),
        ("StockCommitted", str(r[4]), None),
    ]


# --- through the consumer, on the real broker --------------------------------------------------------


def envelope(type_: str, order_id: uuid.UUID, data: dict, event_id: str | None = None) -> Envelope:
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type=type_,
        source="/orderflow/orders",
        subject=str(order_id),
        time=datetime.now(UTC),
        data={"order_id": str(order_id), "customer_id": str(uuid.uuid4()), **data},
        traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        correlation_id=f"corr-{order_id}",
    )


def placed(order_id: uuid.UUID, *wanted: tuple[str, int], event_id: str | None = None) -> Envelope:
    data = {"lines": lines(*wanted), "total": {"amount": "1.00", "currency": "USD"}, "card_token": "tok_visa"}
    return envelope(PLACED, order_id, data, event_id)


def cancelled(order_id: uuid.UUID) -> Envelope:
    return envelope(CANCELLED, order_id, {"reason": "customer", "total": {"amount": "1.00", "currency": "USD"}})


def confirmed(order_id: uuid.UUID) -> Envelope:
    data = {"lines": lines(("SKU-A", 1)), "total": {"amount": "1.00", "currency": "USD"}}
    return envelope(CONFIRMED, order_id, data)


def mixed_stream() -> list[Envelope]:
    o = [uuid.uuid4() for _ in range(8)]
    first = placed(o[0], ("SKU-A", 3))
    return [
        first,
        placed(o[1], ("SKU-A", 2), ("SKU-B", 1)),  # the last two A
        placed(o[2], ("SKU-A", 1)),  # out of stock
        first,  # the same event again: skipped
        placed(o[0], ("SKU-B", 2), event_id=str(uuid.uuid4())),  # the same order, a new event: no effect
        cancelled(o[0]),  # releases 3 A: a run of another type between two runs of OrderPlaced
        placed(o[3], ("SKU-A", 3)),  # only possible after the release above
        placed(o[4], ("SKU-Z", 1)),  # unknown sku
        placed(o[5], ("SKU-B", 2), ("SKU-C", 5)),
        placed(o[6], ("SKU-B", 1)),  # out of stock: 3 - 1 - 2
        confirmed(o[1]),
        confirmed(o[5]),
        confirmed(o[2]),  # rejected: nothing to commit
        cancelled(o[5]),  # committed: restocked
        placed(o[7], ("SKU-B", 2)),  # only possible after the restock
    ]


def test_a_mixed_batch_through_the_batch_handlers_equals_one_by_one_and_redelivery_is_a_no_op(kafka_ns):
    events = mixed_stream()
    send_in_order(events)

    reset_stock()
    one_by_one = ContextConsumer(DB, group_id=f"one-{uuid.uuid4().hex[:8]}", batch_handlers={})
    one_by_one.run(idle_exit_after=3.0)
    expected = snapshot()

    reset_stock()
    spy = Spy(DB)
    name = f"batch-{uuid.uuid4().hex[:8]}"
    batched = ContextConsumer(DB, group_id=name, batch_handlers=spy.handlers())
    assert batched.handlers == one_by_one.handlers  # the context's own one-by-one handlers
    assert set(batched.batch_handlers) == {PLACED, CONFIRMED, CANCELLED}
    batched.run(idle_exit_after=3.0)
    got = snapshot()

    assert (batched.applied, batched.skipped) == (one_by_one.applied, one_by_one.skipped) == (14, 1)
    assert got["stock"] == expected["stock"] == {"SKU-A": (3, 3), "SKU-B": (2, 2), "SKU-C": (100, 0)}
    assert got["reservations"] == expected["reservations"]
    statuses = sorted(status for status, _lines in got["reservations"].values())
    assert statuses == ["COMMITTED", *["REJECTED"] * 3, *["RELEASED"] * 2, *["RESERVED"] * 2]
    # The same replies, but not the same traces: compare all but the per-event headers, which must
    # name each reply's cause and keep its correlation and trace.
    assert [(*e[:5], e[8]) for e in got["outbox"]] == [(*e[:5], e[8]) for e in expected["outbox"]]
    assert len(got["outbox"]) == 12  # 8 orders' replies, 2 commits, 2 releases
    for reply in got["outbox"] + expected["outbox"]:
        cause = next(e for e in events if e.id == reply[6])
        assert cause.data["order_id"] == reply[2]
        assert reply[5] == cause.correlation_id and reply[7] == cause.traceparent[:35]
    # The batch handlers did the work, in stream order, runs split where the type changes.
    fresh = [(e.type, e.data["order_id"]) for i, e in enumerate(events) if i != 3]
    assert [(type_, order_id) for type_, run in spy.runs for order_id in run] == fresh
    assert len(spy.runs) >= 6 and max(len(run) for _type, run in spy.runs) > 1

    # Redelivered from the start (a new Kafka group, the same inbox name): nothing applies twice.
    again = ContextConsumer(DB, group_id=name, batch_handlers=spy.handlers(), config={"group.id": f"{name}-2"})
    again.run(idle_exit_after=3.0)
    assert (again.applied, again.skipped) == (0, len(events))
    assert snapshot() == got
    assert InboxEvent.objects.using(DB).filter(consumer=name).count() == 14


def test_a_failing_record_in_a_batch_is_isolated_and_the_batch_effects_are_not_doubled(kafka_ns):
    reset_stock()
    good = [placed(uuid.uuid4(), ("SKU-C", 1 + n)) for n in range(4)]
    bad = placed(uuid.uuid4(), ("SKU-C", 10))
    send_in_order([good[0], good[1], bad, good[2], good[3]])
    bad_order = bad.data["order_id"]
    real = handlers.SUBSCRIPTIONS
    attempts = {"batch": 0, "one": 0}

    def batch(events: list[Event]) -> None:
        handlers.on_orders_placed(events)  # writes stock, reservations and outbox rows...
        if any(e.data["order_id"] == bad_order for e in events):
            attempts["batch"] += 1
            raise RuntimeError("handler bug")  # ...which must all roll back

    def one(event: Event) -> None:
        if event.data["order_id"] == bad_order:
            attempts["one"] += 1
            raise RuntimeError("handler bug")
        handlers.on_order_placed(event)

    one_by_one = {t.type: h for t, h in real.items()} | {PLACED: one}
    consumer = ContextConsumer(DB, handlers=one_by_one, batch_handlers={PLACED: batch}, retry_delays=[])
    consumer.run(idle_exit_after=3.0)

    assert attempts == {"batch": 1, "one": 1}
    assert (consumer.applied, consumer.dead_lettered) == (4, 1)
    assert StockItem.objects.using(DB).get(sku="SKU-C").reserved == 1 + 2 + 3 + 4
    assert set(Reservation.objects.using(DB).values_list("order_id", flat=True)) == {
        uuid.UUID(e.data["order_id"]) for e in good
    }
    assert sorted(OutboxEvent.objects.using(DB).values_list("aggregateid", flat=True)) == sorted(
        e.data["order_id"] for e in good
    )
    assert DeadLetter.objects.using(DB).get().event_id == bad.id


def test_record_many_kicks_the_relay_once_per_transaction_and_refuses_outside_one(settings):
    settings.OUTBOX_RELAY_LISTEN = False  # the kicks of decision 21; listening relays need none
    import contracts.inventory as events
    from orderflow.messaging import outbox

    reset_stock()
    one, two = uuid.uuid4(), uuid.uuid4()
    with transaction.atomic(using=DB):
        services.orders_reserve(orders=[services.OrderToReserve(one, lines(("SKU-A", 1)))])
        services.orders_reserve(orders=[services.OrderToReserve(two, lines(("SKU-A", 1)))])
        services.orders_commit(orders=[services.OrderRef(one)])
        kicks = [f for _s, f, _r in transaction.get_connection(DB).run_on_commit if isinstance(f, outbox._RelayKick)]
        assert len(kicks) == 1
    assert OutboxEvent.objects.using(DB).count() == 3
    entry = outbox.Entry(events.StockReserved, str(one), {"order_id": str(one), "lines": [{"sku": "A", "quantity": 1}]})
    with pytest.raises(RuntimeError, match="outside a transaction"):
        outbox.record_many(entries=[entry])
    with pytest.raises(ContractError), transaction.atomic(using=DB):
        outbox.record_many(entries=[entry._replace(data={"order_id": "not a uuid", "lines": []})])
    assert OutboxEvent.objects.using(DB).count() == 3

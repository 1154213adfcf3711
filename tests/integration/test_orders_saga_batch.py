"""The orders consumer's batch handler (`services.saga_replies`): a run of mixed saga replies and
notes applied set-based must leave exactly what `saga_reply`/`timeline_note` leave one by one —
statuses, read model, timeline (notes included, in order) and outbox — and a redelivered batch
must change nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from contexts.orders import handlers, services
from contexts.orders.models import Order, OrderView, ProductPrice, TimelineEntry
from contexts.orders.models import OutboxEvent as OrdersOutbox
from orderflow import tracing
from orderflow.messaging.consumer import ContextConsumer, Event, batch_subscriptions
from orderflow.messaging.envelope import Envelope
from tests.fixtures.batches import send_in_order

DB = "orders"
CUSTOMER = uuid.uuid4()  # one customer for both sets of orders, so their events compare equal
TYPES = {
    "stock_reserved": "orderflow.inventory.StockReserved.v1",
    "stock_rejected": "orderflow.inventory.StockReservationFailed.v1",
    "stock_committed": "orderflow.inventory.StockCommitted.v1",
    "stock_released": "orderflow.inventory.StockReleased.v1",
    "payment_authorized": "orderflow.payments.PaymentAuthorized.v1",
    "payment_declined": "orderflow.payments.PaymentDeclined.v1",
    "payment_captured": "orderflow.payments.PaymentCaptured.v1",
    "payment_voided": "orderflow.payments.PaymentVoided.v1",
    "note": "orderflow.notifications.NotificationSent.v1",
}


def place_orders(count: int) -> list[uuid.UUID]:
    ProductPrice.objects.using(DB).get_or_create(
        sku="SKU-B1", defaults={"price_amount": "2.50", "price_currency": "USD"}
    )
    return [
        services.order_place(customer_id=CUSTOMER, lines=[{"sku": "SKU-B1", "quantity": 1 + n % 3}])[0].id
        for n in range(count)
    ]


# What each order hears, interleaved across orders as a consumer batch would see them.
SCRIPT = [
    (0, "payment_authorized"),
    (1, "stock_rejected"),  # cancels 1 (out_of_stock)
    (0, "stock_reserved"),  # confirms 0
    (2, "payment_declined"),  # cancels 2 (payment_declined)
    (1, "payment_authorized"),  # late: applied and noted
    (0, "stock_reserved"),  # a duplicate answer: noted, nothing moves
    (3, "stock_reserved"),  # 3 stays PENDING
    (2, "stock_reserved"),  # late
    (0, "stock_committed"),
    (0, "note"),
    (1, "payment_voided"),
    (2, "stock_released"),
    (0, "payment_captured"),
    (4, "stock_reserved"),
    (4, "payment_authorized"),  # confirms 4 in the same batch as its first reply
    (0, "payment_captured"),  # again: noted
]


def data_for(order_id: uuid.UUID, kind: str) -> dict:
    if kind == "note":
        return {"order_id": str(order_id), "kind": "order_confirmed", "notification_id": "n-1"}
    return {"order_id": str(order_id)}


def script_replies(ids: list[uuid.UUID]) -> list[services.Reply]:
    replies = []
    for n, (index, kind) in enumerate(SCRIPT):
        order_id = ids[index]
        type_ = TYPES[kind].split(".")
        trace = tracing.from_headers(f"00-{n:032x}-{n + 1:016x}-01", f"corr-{index}", f"cause-{n}")
        replies.append(
            services.Reply(
                order_id=order_id,
                reply=None if kind == "note" else kind,
                event_id=f"event-{n}",
                type_=type_[2],
                source=type_[1],
                occurred_at=datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC),
                data=data_for(order_id, kind),
                trace=trace,
            )
        )
    return replies


def one_by_one(replies: list[services.Reply]) -> None:
    for r in replies:
        reply = dict(
            order_id=r.order_id,
            event_id=r.event_id,
            type_=r.type_,
            source=r.source,
            occurred_at=r.occurred_at,
            data=r.data,
        )
        with tracing.use(r.trace):
            if r.reply is None:
                services.timeline_note(**reply)
            else:
                services.saga_reply(reply=r.reply, **reply)


def snapshot(ids: list[uuid.UUID], since_position: int = 0) -> dict:
    """What the replies leave, with order ids replaced by their index in `ids` (so two sets of
    equal orders compare equal) and the orders' own event ids by the outbox row's index."""
    names = {str(order_id): f"o{n}" for n, order_id in enumerate(ids)}

    def named(value) -> object:
        text = json.dumps(value, sort_keys=True, default=str)
        for order_id, name in names.items():
            text = text.replace(order_id, name)
        return json.loads(text)

    def sorted_named(rows: list) -> list:
        return sorted(named(rows))

    outbox = list(
        OrdersOutbox.objects.using(DB)
        .filter(aggregateid__in=names, position__gt=since_position, type__contains="Order")
        .exclude(type__endswith="OrderPlaced.v1")
        .order_by("position")
    )
    own = {str(e.event_id): f"own-{n}" for n, e in enumerate(outbox)}
    statuses = ("status", "stock_status", "payment_status", "cancellation_reason")
    return {
        "orders": sorted_named(
            [
                [str(o.id), *(getattr(o, f) for f in statuses)]
                for o in Order.objects.using(DB).filter(id__in=ids).order_by("id")
            ]
        ),
        "views": sorted_named(
            [
                [str(v.id), *(getattr(v, f) for f in statuses)]
                for v in OrderView.objects.using(DB).filter(id__in=ids).order_by("id")
            ]
        ),
        "timeline": named(
            [
                [
                    str(t.order_id),
                    own.get(t.event_id, t.event_id),
                    t.type,
                    t.source,
                    t.data,
                    None if t.source == "orders" else t.occurred_at,
                ]
                for t in TimelineEntry.objects.using(DB)
                .filter(order_id__in=ids)
                .exclude(type="OrderPlaced")
                .order_by("id")
            ]
        ),
        "outbox": named(
            [
                [
                    e.type,
                    e.aggregatetype,
                    e.aggregateid,
                    e.topic,
                    e.payload,
                    e.headers["correlation_id"],
                    e.headers.get("causation_id"),
                    e.headers["traceparent"][:35],
                    e.attempts,
                    e.published_at,
                ]
                for e in outbox
            ]
        ),
    }


@pytest.mark.django_db(databases="__all__")
def test_saga_replies_leaves_what_saga_reply_leaves_one_by_one():
    first, second = place_orders(5), place_orders(5)
    one_by_one(script_replies(first))
    replies = script_replies(second)
    # In three batches, cut anywhere (mid-order), as consumer batches are.
    for part in (replies[:5], replies[5:6], replies[6:]):
        services.saga_replies(replies=part)

    expected, got = snapshot(first), snapshot(second)
    assert got == expected
    assert [o[1:] for o in expected["orders"]] == [
        ["CONFIRMED", "COMMITTED", "CAPTURED", ""],
        ["CANCELLED", "REJECTED", "VOIDED", "out_of_stock"],  # voided after the late authorization
        ["CANCELLED", "RELEASED", "DECLINED", "payment_declined"],  # released after the late reservation
        ["PENDING", "RESERVED", "PENDING", ""],
        ["CONFIRMED", "RESERVED", "AUTHORIZED", ""],
    ]
    assert expected["views"] == expected["orders"]
    kinds = [e[0].split(".")[2] for e in expected["outbox"]]
    assert kinds == ["OrderCancelled", "OrderConfirmed", "OrderCancelled", "OrderConfirmed"]
    # Each published event names the reply that caused it and keeps that reply's trace.
    assert [(e[5], e[6], e[7]) for e in expected["outbox"]] == [
        ("corr-1", "cause-1", f"00-{1:032x}"),
        ("corr-0", "cause-2", f"00-{2:032x}"),
        ("corr-2", "cause-3", f"00-{3:032x}"),
        ("corr-4", "cause-14", f"00-{14:032x}"),
    ]
    notes = [t for t in expected["timeline"] if "note" in t[4]]
    # The late authorization and reservation, the duplicate reservation, the second capture.
    assert [(t[0], t[2]) for t in notes] == [
        ("o1", "PaymentAuthorized"),
        ("o0", "StockReserved"),
        ("o2", "StockReserved"),
        ("o0", "PaymentCaptured"),
    ]


@pytest.mark.django_db(databases="__all__")
def test_saga_replies_refuses_an_unknown_order_and_writes_nothing():
    (known,) = place_orders(1)
    replies = script_replies([known, uuid.uuid4(), known, known, known])
    before = snapshot([known])
    with pytest.raises(services.OrderNotFound):
        services.saga_replies(replies=replies[:3])
    assert snapshot([known]) == before


# --- through the consumer, on the real broker -------------------------------------------------------


def envelopes(ids: list[uuid.UUID]) -> list[Envelope]:
    return [
        Envelope(
            id=str(same_id(f"event-{n}")),  # the same in both streams, as the rest of the reply
            type=TYPES[kind],
            source=f"/orderflow/{TYPES[kind].split('.')[1]}",
            subject=str(ids[index]),
            time=datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC),
            data=_contract_data(ids[index], kind, n),
            traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
            correlation_id=f"corr-{index}",
        )
        for n, (index, kind) in enumerate(SCRIPT)
    ]


def same_id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"orderflow-test:{name}")


def _contract_data(order_id: uuid.UUID, kind: str, n: int) -> dict:
    """Payloads that pass the reply contracts."""
    money = {"amount": "2.50", "currency": "USD"}
    payment = {"payment_id": str(same_id(f"payment-{n}")), "order_id": str(order_id), "amount": money}
    return {
        "stock_reserved": {"order_id": str(order_id), "lines": [{"sku": "SKU-B1", "quantity": 1}]},
        "stock_rejected": {
            "order_id": str(order_id),
            "reason": "out_of_stock",
            "lines": [{"sku": "SKU-B1", "requested": 1, "available": 0}],
        },
        "stock_committed": {"order_id": str(order_id), "lines": [{"sku": "SKU-B1", "quantity": 1}]},
        "stock_released": {"order_id": str(order_id), "lines": [{"sku": "SKU-B1", "quantity": 1}], "restocked": False},
        "payment_authorized": payment,
        "payment_declined": {**payment, "reason": "card_declined"},
        "payment_captured": payment,
        "payment_voided": payment,
        "note": {
            "notification_id": str(same_id(f"notification-{n}")),
            "order_id": str(order_id),
            "customer_id": str(same_id("customer")),
            "kind": "order_confirmed",
        },
    }[kind]


def send(events: list[Envelope]) -> None:
    # All on one stream's topic, so both consumers see one order whatever they fetch (the consumer
    # dispatches on the event type; a reply's own topic would do the same per stream).
    send_in_order(events, "inventory.reservation")


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_mixed_replies_through_the_consumer_equal_one_by_one_and_redelivery_is_a_no_op(kafka_ns, settings):
    from orderflow.messaging.management.commands.create_topics import create_topics

    first, second = place_orders(5), place_orders(5)
    send(envelopes(first))
    plain = ContextConsumer(DB, group_id=f"one-{uuid.uuid4().hex[:8]}", batch_handlers={})
    plain.run(idle_exit_after=3.0)

    real = batch_subscriptions(DB)
    runs: list[list[str]] = []

    def spy(events: list[Event]) -> None:
        real[events[0].type.type](events)
        runs.append([e.type.name for e in events])

    # The second stream on topics of their own: the batched consumer must not read the first.
    settings.KAFKA_TOPIC_NAMESPACE = f"{kafka_ns}b"
    create_topics()
    send(envelopes(second))
    name = f"batch-{uuid.uuid4().hex[:8]}"
    batched = ContextConsumer(DB, group_id=name, batch_handlers={t: spy for t in real})
    batched.run(idle_exit_after=3.0)

    assert (plain.applied, batched.applied) == (len(SCRIPT), len(SCRIPT))
    got, expected = snapshot(second), snapshot(first)
    for part in ("orders", "views", "timeline"):
        assert got[part] == expected[part]
    # The same events, each caused by its own reply (new event ids and traces per run).
    # (type, aggregate, id, payload; the topics are the two namespaces')
    assert [[*e[:3], e[4]] for e in got["outbox"]] == [[*e[:3], e[4]] for e in expected["outbox"]]
    assert (
        [e[5] for e in got["outbox"]] == [e[5] for e in expected["outbox"]] == ["corr-1", "corr-0", "corr-2", "corr-4"]
    )
    # Mixed types went to the one handler together.
    assert any(len(set(run)) > 2 for run in runs)
    assert sum(len(run) for run in runs) == len(SCRIPT)

    again = ContextConsumer(DB, group_id=name, batch_handlers={t: spy for t in real}, config={"group.id": f"{name}-2"})
    again.run(idle_exit_after=3.0)
    assert (again.applied, again.skipped) == (0, len(SCRIPT))
    assert snapshot(second) == got


def test_every_reply_type_is_in_the_batch_handler():
    one_by_one_types = {
        t.type for t in handlers.SUBSCRIPTIONS if t.context in ("inventory", "payments", "notifications")
    }
    assert {t.type for t in handlers.BATCH_SUBSCRIPTIONS} == one_by_one_types
    assert set(handlers.BATCH_SUBSCRIPTIONS.values()) == {handlers.on_replies}

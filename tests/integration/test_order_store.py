"""Placing an order writes its rows with one SQL statement (contexts/orders/store.py): every row
read back through the ORM models must hold what the models and the contracts expect."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, close_old_connections, connections

import contracts.orders as order_events
from contexts.orders import domain, services, store
from contexts.orders.models import (
    CustomerStatus,
    IdempotencyKey,
    Order,
    OrderLine,
    OrderView,
    OutboxEvent,
    ProductPrice,
    TimelineEntry,
)
from contexts.orders.projection import placed_view
from orderflow import tracing
from orderflow.domain import Money
from orderflow.messaging import outbox

pytestmark = pytest.mark.django_db(databases="__all__")

DB = "orders"


@pytest.fixture
def prices():
    ProductPrice.objects.using(DB).create(sku="SKU-ST1", price_amount="12.50", price_currency="USD")
    ProductPrice.objects.using(DB).create(sku="SKU-ST2", price_amount="0.99", price_currency="USD")
    ProductPrice.objects.using(DB).create(sku="SKU-ST3", price_amount="1.00", price_currency="USD", active=False)


def test_every_row_of_a_placed_order(prices):
    customer = uuid.uuid4()
    trace = tracing.new_root(correlation_id="corr-store-1")
    with tracing.use(trace):
        view, created = services.order_place(
            customer_id=customer,
            lines=[{"sku": "SKU-ST1", "quantity": 2}, {"sku": "SKU-ST2", "quantity": 3}],
            card_token="tok_visa",
            idempotency_key="key-1",
        )
    assert created
    order = Order.objects.using(DB).get(id=view.id)
    assert (order.customer_id, order.status, order.stock_status, order.payment_status) == (
        customer,
        "PENDING",
        "PENDING",
        "PENDING",
    )
    assert (order.total_amount, order.currency, order.cancellation_reason) == (Decimal("27.97"), "USD", "")
    assert order.created_at == order.updated_at == view.created_at
    lines = list(OrderLine.objects.using(DB).filter(order=order).order_by("position"))
    assert [(ln.position, ln.sku, ln.quantity, ln.unit_price_amount) for ln in lines] == [
        (0, "SKU-ST1", 2, Decimal("12.50")),
        (1, "SKU-ST2", 3, Decimal("0.99")),
    ]
    # The aggregate loads back from the rows.
    assert order.to_domain().total == Money.of("27.97", "USD")

    stored_view = OrderView.objects.using(DB).get(id=view.id)
    for field in ("customer_id", "status", "stock_status", "payment_status", "lines", "total", "created_at"):
        assert getattr(stored_view, field) == getattr(view, field), field
    assert stored_view.lines == [
        {"sku": "SKU-ST1", "quantity": 2, "unit_price": {"amount": "12.50", "currency": "USD"}},
        {"sku": "SKU-ST2", "quantity": 3, "unit_price": {"amount": "0.99", "currency": "USD"}},
    ]
    assert stored_view.total == {"amount": "27.97", "currency": "USD"}

    (event,) = OutboxEvent.objects.using(DB).filter(aggregateid=str(view.id))
    assert event.type == order_events.OrderPlaced.type and event.aggregatetype == order_events.OrderPlaced.aggregate
    order_events.OrderPlaced.validate(event.payload)
    assert event.payload["card_token"] == "tok_visa" and event.payload["total"] == stored_view.total
    assert event.headers["correlation_id"] == "corr-store-1"
    assert event.headers["traceparent"].split("-")[1] == trace.trace_id
    assert (event.published_at, event.attempts, event.last_error, event.next_attempt_at) == (None, 0, "", None)

    (entry,) = TimelineEntry.objects.using(DB).filter(order_id=view.id)
    assert (entry.event_id, entry.type, entry.source) == (str(event.event_id), "OrderPlaced", "orders")
    assert "card_token" not in entry.data and entry.data["lines"] == event.payload["lines"]

    key = IdempotencyKey.objects.using(DB).get(customer_id=customer, key="key-1")
    assert key.order_id == view.id and len(key.request_hash) == 64


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_taken_idempotency_key_fails_the_whole_statement(prices):
    customer = uuid.uuid4()
    lines = [{"sku": "SKU-ST1", "quantity": 1}]
    first, _ = services.order_place(customer_id=customer, lines=lines, idempotency_key="k")
    # Two requests with one key raced past the replay check: the second statement fails as a whole.
    _, quotes = store.replicas(customer_id=customer, skus=["SKU-ST1"])
    order = domain.Order.place(customer_id=customer, quotes=quotes, card_token="tok_visa", lines=[("SKU-ST1", 1)])
    (placed,) = order.pull_events()
    event = outbox.prepare(
        event_type=order_events.OrderPlaced,
        aggregate_id=str(order.id),
        data={
            "order_id": str(order.id),
            "customer_id": str(customer),
            "lines": [{"sku": "SKU-ST1", "quantity": 1, "unit_price": {"amount": "12.50", "currency": "USD"}}],
            "total": {"amount": "12.50", "currency": "USD"},
            "card_token": "tok_visa",
        },
    )
    with pytest.raises(IntegrityError):
        store.insert_placed(
            view=placed_view(placed, at=event.occurred_at),
            order=order,
            event=event,
            timeline_type="OrderPlaced",
            timeline_data={},
            idempotency=("k", "another-hash"),
        )
    assert not Order.objects.using(DB).filter(id=order.id).exists()
    assert not OrderView.objects.using(DB).filter(id=order.id).exists()
    assert not OrderLine.objects.using(DB).filter(order_id=order.id).exists()
    assert not TimelineEntry.objects.using(DB).filter(order_id=order.id).exists()
    assert not OutboxEvent.objects.using(DB).filter(aggregateid=str(order.id)).exists()
    # and the retried request gets the first order back
    again, created = services.order_place(
        customer_id=customer, lines=[{"sku": "SKU-ST1", "quantity": 1}], idempotency_key="k"
    )
    assert (again.id, created) == (first.id, False)


def test_replicas_report_prices_and_the_customer(prices):
    customer = uuid.uuid4()
    assert store.replicas(customer_id=customer, skus=["SKU-ST1"])[0] is None  # not heard of yet
    CustomerStatus.objects.using(DB).create(customer_id=customer, active=False)
    active, quotes = store.replicas(customer_id=customer, skus=["SKU-ST1", "SKU-ST3", "SKU-NONE"])
    assert active is False
    assert quotes == {
        "SKU-ST1": domain.PriceQuote("SKU-ST1", Money.of("12.50", "USD"), True),
        "SKU-ST3": domain.PriceQuote("SKU-ST3", Money.of("1.00", "USD"), False),
    }


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_dead_connection_is_replaced_before_placing(prices):
    """The store runs its statements on the raw connection: Django's per-request health check
    (CONN_HEALTH_CHECKS) must still replace a connection that died between requests."""
    connection = connections[DB]
    before = connection.settings_dict["CONN_MAX_AGE"]
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = 60  # reused across requests, as in production
    try:
        store.replicas(customer_id=uuid.uuid4(), skus=["SKU-ST1"])
        victim = connection.connection.info.backend_pid
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [victim])
        close_old_connections()  # what Django runs when the next request starts
        view, created = services.order_place(customer_id=uuid.uuid4(), lines=[{"sku": "SKU-ST1", "quantity": 1}])
        assert created and Order.objects.using(DB).filter(id=view.id).exists()
        assert connection.connection.info.backend_pid != victim
    finally:
        connection.close()
        connection.settings_dict["CONN_MAX_AGE"] = before

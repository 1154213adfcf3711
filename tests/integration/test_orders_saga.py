"""The orders saga (process manager) and its endpoints, in-process on the real databases."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from contexts.orders import services
from contexts.orders.models import Order, OrderView, ProductPrice, TimelineEntry
from contexts.orders.models import OutboxEvent as OrdersOutbox

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def order_of(make_customer):
    ProductPrice.objects.using("orders").create(sku="SKU-S1", price_amount="4.00", price_currency="USD")

    def make(quantity: int = 1):
        _, client = make_customer()
        response = client.post("/api/orders/", {"lines": [{"sku": "SKU-S1", "quantity": quantity}]}, format="json")
        assert response.status_code == 202
        return uuid.UUID(response.json()["id"]), client

    return make


def reply(order_id: uuid.UUID, kind: str, source: str = "inventory") -> str:
    event_id = str(uuid.uuid4())
    services.saga_reply(
        order_id=order_id,
        reply=kind,
        event_id=event_id,
        type_=kind,
        source=source,
        occurred_at=timezone.now(),
        data={"order_id": str(order_id)},
    )
    return event_id


def published(order_id: uuid.UUID) -> list[str]:
    return [r.type.split(".")[2] for r in OrdersOutbox.objects.using("orders").filter(aggregateid=str(order_id))]


def test_both_replies_confirm_and_publish_once(order_of):
    order_id, client = order_of()
    reply(order_id, "payment_authorized", "payments")
    reply(order_id, "stock_reserved")
    reply(order_id, "stock_reserved")  # a duplicated reply with another event id
    view = client.get(f"/api/orders/{order_id}/").json()
    assert (view["status"], view["stock_status"], view["payment_status"]) == ("CONFIRMED", "RESERVED", "AUTHORIZED")
    assert published(order_id) == ["OrderPlaced", "OrderConfirmed"]
    confirmed = OrdersOutbox.objects.using("orders").get(type="orderflow.orders.OrderConfirmed.v1")
    assert confirmed.payload["total"] == {"amount": "4.00", "currency": "USD"}
    timeline = client.get(f"/api/orders/{order_id}/timeline/").json()
    assert [e["type"] for e in timeline] == [
        "OrderPlaced",
        "payment_authorized",
        "stock_reserved",
        "OrderConfirmed",
        "stock_reserved",
    ]
    assert "already RESERVED" in timeline[-1]["data"]["note"]


def test_out_of_stock_cancels_and_a_late_authorization_is_only_noted(order_of):
    order_id, client = order_of()
    reply(order_id, "stock_rejected")
    reply(order_id, "payment_authorized", "payments")
    view = client.get(f"/api/orders/{order_id}/").json()
    assert (view["status"], view["cancellation_reason"], view["payment_status"]) == (
        "CANCELLED",
        "out_of_stock",
        "AUTHORIZED",
    )
    assert published(order_id) == ["OrderPlaced", "OrderCancelled"]
    late = TimelineEntry.objects.using("orders").get(order_id=order_id, type="payment_authorized")
    assert "late reply" in late.data["note"]


def test_customer_cancel_ship_deliver_and_conflicts(order_of, staff_client):
    pending_id, owner = order_of()
    cancelled = owner.post(f"/api/orders/{pending_id}/cancel/", {"reason": "ignored for customers"}, format="json")
    assert cancelled.status_code == 202
    assert (cancelled.json()["status"], cancelled.json()["cancellation_reason"]) == ("CANCELLED", "customer_request")
    assert owner.post(f"/api/orders/{pending_id}/cancel/", {}, format="json").status_code == 409

    order_id, owner = order_of()
    assert owner.post(f"/api/orders/{order_id}/ship/").status_code == 403
    assert staff_client.post(f"/api/orders/{order_id}/ship/").status_code == 409  # still PENDING
    reply(order_id, "stock_reserved")
    reply(order_id, "payment_authorized", "payments")
    assert staff_client.post(f"/api/orders/{order_id}/deliver/").status_code == 409
    shipped = staff_client.post(f"/api/orders/{order_id}/ship/")
    assert shipped.status_code == 200 and shipped.json()["status"] == "SHIPPED"
    assert owner.post(f"/api/orders/{order_id}/cancel/").status_code == 409
    assert staff_client.post(f"/api/orders/{order_id}/deliver/").json()["status"] == "DELIVERED"
    assert staff_client.post(f"/api/orders/{uuid.uuid4()}/ship/").status_code == 404
    assert published(order_id) == ["OrderPlaced", "OrderConfirmed", "OrderShipped", "OrderDelivered"]


def test_staff_cancel_keeps_the_staff_reason(order_of, staff_client):
    order_id, _ = order_of()
    response = staff_client.post(f"/api/orders/{order_id}/cancel/", {"reason": "fraud suspected"}, format="json")
    assert response.json()["cancellation_reason"] == "fraud suspected"


def test_other_customers_cannot_cancel(order_of, make_customer):
    order_id, _ = order_of()
    _, stranger = make_customer()
    assert stranger.post(f"/api/orders/{order_id}/cancel/").status_code == 404


def test_pending_orders_past_the_deadline_are_cancelled_with_timeout(order_of, settings):
    settings.ORDERS_PENDING_DEADLINE = timedelta(minutes=5)
    old_id, _ = order_of()
    fresh_id, _ = order_of()
    Order.objects.using("orders").filter(id=old_id).update(created_at=timezone.now() - timedelta(minutes=6))
    assert services.orders_expire() == 1
    assert services.orders_expire() == 0
    assert OrderView.objects.using("orders").get(id=old_id).cancellation_reason == "timeout"
    assert OrderView.objects.using("orders").get(id=fresh_id).status == "PENDING"
    cancelled = OrdersOutbox.objects.using("orders").get(type="orderflow.orders.OrderCancelled.v1")
    assert cancelled.payload["reason"] == "timeout" and cancelled.aggregateid == str(old_id)


def test_deactivated_customers_cannot_order(make_customer):
    ProductPrice.objects.using("orders").create(sku="SKU-S2", price_amount="1.00", price_currency="USD")
    account, client = make_customer()
    services.customer_status_set(customer_id=account.id, active=False)
    response = client.post("/api/orders/", {"lines": [{"sku": "SKU-S2", "quantity": 1}]}, format="json")
    assert response.status_code == 403 and "deactivated" in response.json()["detail"]

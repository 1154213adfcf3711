"""The operator's admin: find an order by id, customer email or status, and see its timeline."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from contexts.orders import services
from contexts.orders.models import ProductPrice

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def operator() -> Client:
    user = get_user_model().objects.create_superuser("ops@example.com", "ops@example.com", "ops-password")
    client = Client()
    client.force_login(user)
    return client


def test_staff_find_orders_by_customer_email_and_see_the_timeline(operator, make_customer):
    ProductPrice.objects.using("orders").create(sku="SKU-A1", price_amount="1.00", price_currency="USD")
    account, customer = make_customer(email="findme@example.com")
    services.customer_status_set(customer_id=account.id, email=account.email)
    order_id = customer.post("/api/orders/", {"lines": [{"sku": "SKU-A1", "quantity": 1}]}, format="json").json()["id"]
    _, other = make_customer()
    other_id = other.post("/api/orders/", {"lines": [{"sku": "SKU-A1", "quantity": 1}]}, format="json").json()["id"]

    by_email = operator.get("/admin/orders/order/", {"q": "FindMe@example.com"}).content.decode()
    assert order_id in by_email and other_id not in by_email
    by_id = operator.get("/admin/orders/order/", {"q": order_id}).content.decode()
    assert order_id in by_id and other_id not in by_id
    assert order_id in operator.get("/admin/orders/order/", {"status__exact": "PENDING"}).content.decode()

    page = operator.get(f"/admin/orders/order/{order_id}/change/").content.decode()
    assert "OrderPlaced" in page and "timeline" in page


@pytest.mark.parametrize(
    "path",
    [
        "/admin/customers/account/",
        "/admin/catalog/product/",
        "/admin/inventory/stockitem/",
        "/admin/inventory/reservation/",
        "/admin/orders/order/",
        "/admin/payments/payment/",
        "/admin/notifications/notification/",
        "/admin/orders/outboxevent/?status=pending",
        "/admin/inventory/inboxevent/",
    ],
)
def test_every_admin_page_renders(operator, path):
    assert operator.get(path).status_code == 200


def test_outbox_admin_retry_action_kicks_the_relay(operator):
    from contexts.catalog import services as catalog
    from contexts.catalog.models import OutboxEvent
    from orderflow.domain import Money

    catalog.product_add(sku=f"SKU-{uuid.uuid4().hex[:6].upper()}", name="x", price=Money.of("1", "USD"))
    row = OutboxEvent.objects.using("catalog").get()
    OutboxEvent.objects.using("catalog").filter(pk=row.pk).update(attempts=3, last_error="broker down")
    response = operator.post("/admin/catalog/outboxevent/", {"action": "retry_now", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db(using="catalog")
    assert (row.attempts, row.last_error) == (0, "")

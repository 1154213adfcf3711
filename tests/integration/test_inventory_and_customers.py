"""Inventory compensations and customer account changes, on the real databases."""

from __future__ import annotations

import uuid

import pytest

from contexts.customers import services as customers
from contexts.customers.models import OutboxEvent as CustomersOutbox
from contexts.inventory import services as inventory
from contexts.inventory.models import OutboxEvent as InventoryOutbox
from contexts.inventory.models import Reservation, StockItem

pytestmark = pytest.mark.django_db(databases="__all__")


def stock(sku: str) -> tuple[int, int]:
    item = StockItem.objects.using("inventory").get(sku=sku)
    return item.on_hand, item.reserved


def test_commit_then_cancel_restocks_and_release_returns_reservations():
    StockItem.objects.using("inventory").create(sku="SKU-I", on_hand=10)
    confirmed, cancelled, rejected = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    inventory.order_reserve(order_id=confirmed, lines=[{"sku": "SKU-I", "quantity": 3}])
    inventory.order_reserve(order_id=cancelled, lines=[{"sku": "SKU-I", "quantity": 2}])
    inventory.order_reserve(order_id=rejected, lines=[{"sku": "SKU-I", "quantity": 50}])
    assert stock("SKU-I") == (10, 5)

    inventory.order_commit(order_id=confirmed)
    inventory.order_commit(order_id=confirmed)  # idempotent
    assert stock("SKU-I") == (7, 2)
    inventory.order_release(order_id=cancelled)
    assert stock("SKU-I") == (7, 0)
    inventory.order_release(order_id=confirmed)  # cancelled after confirmation: restock
    inventory.order_release(order_id=confirmed)
    inventory.order_release(order_id=rejected)  # nothing was reserved
    inventory.order_commit(order_id=cancelled)  # a released reservation never commits
    assert stock("SKU-I") == (10, 0)
    assert Reservation.objects.using("inventory").get(order_id=rejected).status == "REJECTED"
    released = {
        r.payload["order_id"]: r.payload["restocked"]
        for r in InventoryOutbox.objects.using("inventory").filter(type__contains="StockReleased")
    }
    assert released == {str(cancelled): False, str(confirmed): True}
    assert InventoryOutbox.objects.using("inventory").filter(type__contains="StockCommitted").count() == 1


def test_email_change_and_deactivation_publish_events(api, make_customer):
    account, client = make_customer(email="before@example.com")
    make_customer(email="taken@example.com")
    assert client.patch("/api/customers/me/", {"email": "taken@example.com"}, format="json").status_code == 409
    changed = client.patch("/api/customers/me/", {"email": "After@Example.com", "name": "New Name"}, format="json")
    assert changed.status_code == 200
    assert changed.json() == {"id": str(account.id), "email": "after@example.com", "name": "New Name", "active": True}
    event = CustomersOutbox.objects.using("customers").get(type="orderflow.customers.CustomerEmailChanged.v1")
    assert event.payload == {
        "customer_id": str(account.id),
        "email": "after@example.com",
        "previous_email": "before@example.com",
    }

    customers.customer_deactivate(customer_id=account.id)
    customers.customer_deactivate(customer_id=account.id)
    assert CustomersOutbox.objects.using("customers").filter(type__contains="CustomerDeactivated").count() == 1
    login = api.post("/api/auth/token/", {"email": "after@example.com", "password": "correct-horse"}, format="json")
    assert login.status_code == 401

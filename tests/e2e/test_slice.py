"""The first saga slice end to end: real processes, real broker, over HTTP."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e


def test_stack_is_ready_and_documented(stack):
    http = stack.http()
    ready = http.get("/health/ready")
    assert ready.status == 200 and ready.body["failed"] == []
    assert http.get("/health/live").status == 200
    assert http.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).status == 200
    docs = http.request("GET", "/api/docs/", headers={"Accept": "text/html"})
    assert docs.status == 200 and "swagger-ui" in docs.body
    asset = http.request("GET", "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status == 200, "Swagger UI assets are served locally"


def test_catalog_to_reservation_slice_over_http(stack):
    http = stack.http()
    staff = http.login("admin@orderflow.local", "admin")

    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    registered = http.post("/api/customers/", {"email": email, "password": "e2e-password", "name": "E2E"})
    assert registered.status == 201, registered.body
    customer = http.login(email, "e2e-password")

    sku = f"SKU-E2E-{uuid.uuid4().hex[:6].upper()}"
    created = staff.post(
        "/api/catalog/products/",
        {"sku": sku, "name": "E2E mug", "description": "stoneware", "price": {"amount": "7.25", "currency": "USD"}},
    )
    assert created.status == 201, created.body
    # ProductAdded → inventory creates the stock row...
    eventually(lambda: http.get(f"/api/inventory/stock/{sku}/").status == 200, message="stock row replicated")
    adjusted = staff.post(f"/api/inventory/stock/{sku}/adjust/", {"delta": 5, "reason": "first delivery"})
    assert adjusted.status == 200 and adjusted.body["on_hand"] == 5
    assert staff.post(f"/api/inventory/stock/{sku}/adjust/", {"delta": -6, "reason": "x"}).status == 409

    # ...and orders stores the price in its replica: until then the sku is unknown to orders (400).
    def place(quantity: int):
        response = customer.post("/api/orders/", {"lines": [{"sku": sku, "quantity": quantity}]})
        return response if response.status == 202 else None

    accepted = eventually(lambda: place(2), message="order accepted once the price replica has the sku")
    order = accepted.body
    assert order["status"] == "PENDING" and order["total"] == {"amount": "14.50", "currency": "USD"}
    assert accepted.headers["Location"].endswith(f"/api/orders/{order['id']}/")

    # OrderPlaced → inventory reserves → StockReserved → the order's stock_status.
    reserved = eventually(
        lambda: (o := customer.get(f"/api/orders/{order['id']}/").body)["stock_status"] == "RESERVED" and o,
        message="stock reserved",
    )
    assert reserved["status"] == "PENDING"
    assert http.get(f"/api/inventory/stock/{sku}/").body == {"sku": sku, "on_hand": 5, "reserved": 2, "available": 3}

    # Not enough left: all-or-nothing rejection, nothing reserved.
    too_many = customer.post("/api/orders/", {"lines": [{"sku": sku, "quantity": 4}]})
    assert too_many.status == 202
    eventually(
        lambda: customer.get(f"/api/orders/{too_many.body['id']}/").body["stock_status"] == "REJECTED",
        message="stock rejected",
    )
    assert http.get(f"/api/inventory/stock/{sku}/").body["reserved"] == 2

    timeline = customer.get(f"/api/orders/{order['id']}/timeline/").body
    assert [(e["type"], e["source"]) for e in timeline] == [("OrderPlaced", "orders"), ("StockReserved", "inventory")]
    other = http.login(*_another_customer(http))
    assert other.get(f"/api/orders/{order['id']}/").status == 404


def _another_customer(http) -> tuple[str, str]:
    email = f"other-{uuid.uuid4().hex[:8]}@example.com"
    assert http.post("/api/customers/", {"email": email, "password": "other-password", "name": "O"}).status == 201
    return email, "other-password"

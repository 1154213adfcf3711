"""The public HTTP contract of the first slice, in-process on the real databases."""

from __future__ import annotations

import uuid

import pytest

from contexts.inventory.models import StockItem
from contexts.orders.models import OutboxEvent as OrdersOutbox
from contexts.orders.models import ProductPrice

pytestmark = pytest.mark.django_db(databases="__all__")

PROBLEM = "application/problem+json"


def test_registration_and_tokens(api, make_customer):
    created = api.post(
        "/api/customers/", {"email": "Ada@Example.com", "password": "long-enough", "name": "Ada"}, format="json"
    )
    assert created.status_code == 201
    assert set(created.json()) == {"id", "email", "name"} and created.json()["email"] == "ada@example.com"

    duplicate = api.post(
        "/api/customers/", {"email": "ada@example.com", "password": "long-enough", "name": "A"}, format="json"
    )
    assert duplicate.status_code == 409 and duplicate["Content-Type"] == PROBLEM
    assert duplicate.json()["status"] == 409 and duplicate.json()["title"]

    bad = api.post("/api/auth/token/", {"email": "ada@example.com", "password": "wrong"}, format="json")
    assert bad.status_code == 401 and bad["Content-Type"] == PROBLEM

    tokens = api.post("/api/auth/token/", {"email": "ada@example.com", "password": "long-enough"}, format="json")
    assert tokens.status_code == 200 and {"access", "refresh"} <= set(tokens.json())
    refreshed = api.post("/api/auth/token/refresh/", {"refresh": tokens.json()["refresh"]}, format="json")
    assert refreshed.status_code == 200 and "access" in refreshed.json()
    assert api.post("/api/auth/token/refresh/", {"refresh": "nonsense"}, format="json").status_code == 401

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    me = api.get("/api/customers/me/")
    assert me.status_code == 200
    assert me.json() == {"id": created.json()["id"], "email": "ada@example.com", "name": "Ada", "active": True}


def test_validation_errors_are_problem_details_with_field_errors(api):
    response = api.post("/api/customers/", {"email": "not-an-email", "password": "short"}, format="json")
    assert response.status_code == 400 and response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 400 and body["type"].startswith("https://")
    assert {e["field"] for e in body["errors"]} == {"email", "password", "name"}


def test_products_staff_only_writes_and_search(api, staff_client, make_customer):
    _, customer = make_customer()
    product = {
        "sku": "SKU-T1",
        "name": "Travel grinder",
        "description": "Hand grinder with steel burrs",
        "price": {"amount": "45.00", "currency": "USD"},
    }
    assert api.post("/api/catalog/products/", product, format="json").status_code == 401
    assert customer.post("/api/catalog/products/", product, format="json").status_code == 403
    created = staff_client.post("/api/catalog/products/", product, format="json")
    assert created.status_code == 201
    assert created.json() == {**product, "active": True}
    assert staff_client.post("/api/catalog/products/", product, format="json").status_code == 409
    staff_client.post(
        "/api/catalog/products/",
        {**product, "sku": "SKU-T2", "name": "Kettle", "description": "Gooseneck"},
        format="json",
    )

    page = api.get("/api/catalog/products/", {"search": "grinders"})
    assert page.status_code == 200 and set(page.json()) == {"count", "next", "previous", "results"}
    assert [p["sku"] for p in page.json()["results"]] == ["SKU-T1"]
    assert api.get("/api/catalog/products/SKU-T2/").json()["name"] == "Kettle"
    assert api.get("/api/catalog/products/NOPE/").status_code == 404

    patched = staff_client.patch("/api/catalog/products/SKU-T1/", {"price": {"amount": "40.00"}}, format="json")
    assert patched.status_code == 400  # currency is required when changing a price
    patched = staff_client.patch(
        "/api/catalog/products/SKU-T1/", {"price": {"amount": "40.00", "currency": "USD"}}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["price"]["amount"] == "40.00"


def test_stock_read_and_staff_adjustments_never_below_zero(api, staff_client, make_customer):
    _, customer = make_customer()
    StockItem.objects.using("inventory").create(sku="SKU-S", on_hand=3, reserved=2)
    assert api.get("/api/inventory/stock/SKU-S/").json() == {
        "sku": "SKU-S",
        "on_hand": 3,
        "reserved": 2,
        "available": 1,
    }
    adjust = "/api/inventory/stock/SKU-S/adjust/"
    assert customer.post(adjust, {"delta": 5, "reason": "x"}, format="json").status_code == 403
    ok = staff_client.post(adjust, {"delta": 5, "reason": "delivery"}, format="json")
    assert ok.status_code == 200 and ok.json()["on_hand"] == 8
    too_much = staff_client.post(adjust, {"delta": -7, "reason": "shrinkage"}, format="json")
    assert too_much.status_code == 409 and too_much["Content-Type"] == PROBLEM
    assert StockItem.objects.using("inventory").get(sku="SKU-S").on_hand == 8
    assert (
        staff_client.post("/api/inventory/stock/NOPE/adjust/", {"delta": 1, "reason": "x"}, format="json").status_code
        == 404
    )


@pytest.fixture
def priced(db):
    ProductPrice.objects.using("orders").create(sku="SKU-O1", price_amount="2.50", price_currency="USD")
    ProductPrice.objects.using("orders").create(sku="SKU-O2", price_amount="10.00", price_currency="USD")
    ProductPrice.objects.using("orders").create(sku="SKU-EUR", price_amount="1.00", price_currency="EUR")
    ProductPrice.objects.using("orders").create(sku="SKU-OLD", price_amount="1.00", price_currency="USD", active=False)


def test_place_order_prices_from_the_replica(priced, make_customer):
    account, customer = make_customer()
    body = {
        "lines": [{"sku": "SKU-O1", "quantity": 2, "unit_price": "0.01"}, {"sku": "SKU-O2", "quantity": 1}],
        "total": {"amount": "0.01", "currency": "USD"},
        "status": "CONFIRMED",
    }
    response = customer.post("/api/orders/", body, format="json")
    assert response.status_code == 202
    order = response.json()
    assert response["Location"].endswith(f"/api/orders/{order['id']}/")
    assert order["status"] == "PENDING" and order["stock_status"] == "PENDING" and order["payment_status"] == "PENDING"
    assert order["total"] == {"amount": "15.00", "currency": "USD"}
    assert [ln["unit_price"] for ln in order["lines"]] == [
        {"amount": "2.50", "currency": "USD"},
        {"amount": "10.00", "currency": "USD"},
    ]
    assert order["cancellation_reason"] is None
    placed = OrdersOutbox.objects.using("orders").get(aggregateid=order["id"])
    assert placed.type == "orderflow.orders.OrderPlaced.v1"
    assert placed.payload["customer_id"] == str(account.id) and placed.payload["card_token"] == "tok_visa"
    assert customer.get(f"/api/orders/{order['id']}/").json()["id"] == order["id"]
    timeline = customer.get(f"/api/orders/{order['id']}/timeline/").json()
    assert [(e["type"], e["source"]) for e in timeline] == [("OrderPlaced", "orders")]


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ([{"sku": "SKU-O1", "quantity": 0}], "lines.0.quantity"),
        ([{"sku": "SKU-O1", "quantity": 1}, {"sku": "NOPE", "quantity": 1}], "lines.1.sku"),
        ([{"sku": "SKU-OLD", "quantity": 1}], "lines.0.sku"),
        ([{"sku": "SKU-O1", "quantity": 1}, {"sku": "SKU-EUR", "quantity": 1}], "lines"),
    ],
)
def test_invalid_orders_are_400_and_publish_nothing(priced, make_customer, lines, field):
    _, customer = make_customer()
    response = customer.post("/api/orders/", {"lines": lines}, format="json")
    assert response.status_code == 400 and response["Content-Type"] == PROBLEM
    assert field in {e["field"] for e in response.json()["errors"]}
    assert OrdersOutbox.objects.using("orders").count() == 0


def test_orders_are_private_to_their_customer(priced, make_customer, staff_client, api):
    _, alice = make_customer()
    _, bob = make_customer()
    order = alice.post("/api/orders/", {"lines": [{"sku": "SKU-O1", "quantity": 1}]}, format="json").json()
    assert bob.get(f"/api/orders/{order['id']}/").status_code == 404
    assert bob.get(f"/api/orders/{order['id']}/timeline/").status_code == 404
    assert bob.get("/api/orders/").json()["count"] == 0
    assert alice.get("/api/orders/", {"status": "PENDING"}).json()["count"] == 1
    assert alice.get("/api/orders/", {"status": "WHATEVER"}).status_code == 400
    assert staff_client.get(f"/api/orders/{order['id']}/").status_code == 200
    assert api.get("/api/orders/").status_code == 401
    assert bob.get(f"/api/orders/{uuid.uuid4()}/").status_code == 404


def test_idempotency_key_replays_and_refuses_a_different_body(priced, make_customer):
    _, customer = make_customer()
    body = {"lines": [{"sku": "SKU-O1", "quantity": 1}]}
    first = customer.post("/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = customer.post("/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = customer.post(
        "/api/orders/", {"lines": [{"sku": "SKU-O1", "quantity": 2}]}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert other.status_code == 422 and other["Content-Type"] == PROBLEM
    assert OrdersOutbox.objects.using("orders").count() == 1


def test_openapi_schema_docs_and_health(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/customers/",
        "/api/auth/token/",
        "/api/catalog/products/",
        "/api/orders/",
        "/api/inventory/stock/{sku}/adjust/",
    ]:
        assert path in paths
    docs = api.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content and b"cdn." not in docs.content
    assert api.get("/health/live").json() == {"status": "ok"}
    ready = api.get("/health/ready")
    assert ready.status_code == 200, ready.json()
    assert {"redis", "kafka", "database:orders"} <= set(ready.json()["checks"])
    assert b"orderflow_outbox_backlog" in api.get("/metrics").content
    browsable = api.get("/api/catalog/products/", HTTP_ACCEPT="text/html")
    assert browsable.status_code == 200 and b"Django REST framework" in browsable.content

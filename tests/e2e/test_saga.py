"""Every saga path end to end: real processes, real broker, driven over HTTP.

The stack runs with a 6 s PENDING deadline and a 500.00 single-payment limit (tests/e2e/conftest.py).
The last test checks the architecture's invariants over every order these scenarios created.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from tests.e2e.conftest import DEADLINE_SECONDS, eventually
from tests.e2e.shop import FINAL, Shop, assert_invariants
from tests.fixtures.processes import manage, pg_connect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shop(stack) -> Shop:
    return Shop(stack, stack.http().login("admin@orderflow.local", "admin"))


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
    assert "orderflow_outbox_backlog" in http.request("GET", "/metrics").body


def test_await_settled_answers_once_every_group_has_caught_up(stack):
    # `make run` says ready only after this: the seeded catalog has reached the orders replica.
    settled = manage("await_settled", "--timeout", "60", env=stack.env, timeout=90)
    assert "settled: 6 context(s)" in settled.stdout
    # Groups that never joined (another namespace: no members, no topics) are named after the wait.
    elsewhere = manage(
        "await_settled",
        "--timeout",
        "1",
        env={**stack.env, "KAFKA_TOPIC_NAMESPACE": f"nobody{uuid.uuid4().hex[:6]}"},
        timeout=60,
        check=False,
    )
    assert elsewhere.returncode == 1, elsewhere.stdout
    assert "not settled after 1 s" in elsewhere.stderr
    for context in ("inventory", "orders", "payments", "notifications"):
        assert f"{context}: consumer group empty (no member has joined yet)" in elsewhere.stderr
    assert "catalog:" not in elsewhere.stderr  # subscribes to nothing: no group to wait for
    # No broker: retried until the timeout, then one clear line instead of a traceback.
    unreachable = manage(
        "await_settled",
        "--timeout",
        "1",
        env={**stack.env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        timeout=60,
        check=False,
    )
    assert unreachable.returncode == 1
    assert "CommandError: the Kafka broker did not answer within 1 s" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_happy_path_confirms_captures_commits_and_notifies_once(shop):
    sku = shop.product(price="7.25", stock=5)
    alice = shop.customer()
    order = shop.place(alice, [(sku, 2)])
    assert order["status"] == "PENDING" and order["total"] == {"amount": "14.50", "currency": "USD"}
    done = shop.wait(alice, order["id"], status="CONFIRMED", payment_status="CAPTURED", stock_status="COMMITTED")
    assert done["cancellation_reason"] is None
    assert shop.stock(sku) == {"sku": sku, "on_hand": 3, "reserved": 0, "available": 3}
    [payment] = shop.payments(alice, order["id"])
    assert payment["status"] == "CAPTURED" and payment["amount"] == {"amount": "14.50", "currency": "USD"}

    notes = eventually(
        lambda: [
            n for n in alice.get("/api/notifications/").body["results"] if n["order_id"] == order["id"] and n["sent_at"]
        ],
        message="notification sent",
    )
    assert [n["kind"] for n in notes] == ["order_confirmed"]
    timeline = eventually(
        lambda: (t := shop.timeline(alice, order["id"])) and "NotificationSent" in {e["type"] for e in t} and t,
        message="timeline complete",
    )
    types = [e["type"] for e in timeline]
    assert types[:1] == ["OrderPlaced"] and types.index("OrderConfirmed") > types.index("StockReserved")
    assert {"PaymentAuthorized", "PaymentCaptured", "StockCommitted"} <= set(types)
    assert {e["source"] for e in timeline} == {"orders", "inventory", "payments", "notifications"}


def test_out_of_stock_cancels_and_voids_the_authorization(shop):
    sku = shop.product(price="3.00", stock=1)
    bob = shop.customer()
    order = shop.place(bob, [(sku, 2)])
    done = shop.wait(bob, order["id"], status="CANCELLED", stock_status="REJECTED", payment_status="VOIDED")
    assert done["cancellation_reason"] == "out_of_stock"
    assert shop.stock(sku)["reserved"] == 0 and shop.stock(sku)["on_hand"] == 1
    assert [p["status"] for p in shop.payments(bob, order["id"])] == ["VOIDED"]


@pytest.mark.parametrize(("card", "quantity"), [("tok_declined", 1), ("tok_insufficient_funds", 1), ("tok_visa", 30)])
def test_declined_payments_cancel_and_release_stock(shop, card, quantity):
    sku = shop.product(price="20.00", stock=40)  # 30 x 20.00 is over the 500.00 limit
    carol = shop.customer()
    order = shop.place(carol, [(sku, quantity)], card=card)
    done = shop.wait(carol, order["id"], status="CANCELLED", payment_status="DECLINED", stock_status="RELEASED")
    assert done["cancellation_reason"] == "payment_declined"
    assert shop.stock(sku) == {"sku": sku, "on_hand": 40, "reserved": 0, "available": 40}


def test_customer_cancels_while_pending_then_the_late_authorization_is_voided(shop):
    sku = shop.product(price="5.00", stock=3)
    dave = shop.customer()
    with shop.paused("consumer-payments"):  # no payment answer yet: the order stays PENDING
        order = shop.place(dave, [(sku, 1)])
        shop.wait(dave, order["id"], stock_status="RESERVED")
        cancelled = dave.post(f"/api/orders/{order['id']}/cancel/", {})
        assert cancelled.status == 202 and cancelled.body["status"] == "CANCELLED"
        assert cancelled.body["cancellation_reason"] == "customer_request"
    done = shop.wait(dave, order["id"], stock_status="RELEASED", payment_status="VOIDED")
    assert done["status"] == "CANCELLED"
    assert shop.stock(sku) == {"sku": sku, "on_hand": 3, "reserved": 0, "available": 3}
    late = [e for e in shop.timeline(dave, order["id"]) if e["type"] == "PaymentAuthorized"]
    assert "late reply" in late[0]["data"]["note"]


def test_cancel_after_confirmation_refunds_and_restocks(shop):
    sku = shop.product(price="12.00", stock=4)
    erin = shop.customer()
    order = shop.place(erin, [(sku, 3)])
    shop.wait(erin, order["id"], status="CONFIRMED", stock_status="COMMITTED", payment_status="CAPTURED")
    assert shop.stock(sku)["on_hand"] == 1
    assert erin.post(f"/api/orders/{order['id']}/cancel/", {}).status == 202
    shop.wait(erin, order["id"], status="CANCELLED", stock_status="RELEASED", payment_status="REFUNDED")
    assert shop.stock(sku) == {"sku": sku, "on_hand": 4, "reserved": 0, "available": 4}
    kinds = eventually(
        lambda: (
            sorted(n["kind"] for n in erin.get("/api/notifications/").body["results"] if n["sent_at"])
            == ["order_cancelled", "order_confirmed"]
        ),
        message="both notifications sent",
    )
    assert kinds


def test_ship_deliver_and_no_cancel_after_shipping(shop):
    sku = shop.product(price="9.00", stock=2)
    frank = shop.customer()
    order = shop.place(frank, [(sku, 1)])
    shop.wait(frank, order["id"], status="CONFIRMED")
    assert frank.post(f"/api/orders/{order['id']}/ship/").status == 403
    assert shop.staff.post(f"/api/orders/{order['id']}/deliver/").status == 409
    assert shop.staff.post(f"/api/orders/{order['id']}/ship/").body["status"] == "SHIPPED"
    assert frank.post(f"/api/orders/{order['id']}/cancel/", {}).status == 409
    assert shop.staff.post(f"/api/orders/{order['id']}/deliver/").body["status"] == "DELIVERED"
    assert shop.staff.post(f"/api/orders/{order['id']}/cancel/", {}).status == 409
    eventually(
        lambda: (
            {n["kind"] for n in frank.get("/api/notifications/").body["results"] if n["sent_at"]}
            == {"order_confirmed", "order_shipped", "order_delivered"}
        ),
        message="three notifications",
    )


def test_pending_order_past_the_deadline_is_cancelled_with_timeout(shop):
    sku = shop.product(price="4.00", stock=2)
    gina = shop.customer()
    with shop.paused("consumer-payments"):
        order = shop.place(gina, [(sku, 2)])
        done = shop.wait(gina, order["id"], status="CANCELLED")
        assert done["cancellation_reason"] == "timeout"
    shop.wait(gina, order["id"], stock_status="RELEASED", payment_status="VOIDED")
    assert shop.stock(sku)["available"] == 2
    assert DEADLINE_SECONDS < 30


def test_idempotency_key_replay_and_mismatch(shop):
    sku = shop.product(price="1.00", stock=10)
    hank = shop.customer()
    key = str(uuid.uuid4())
    first = shop.place(hank, [(sku, 1)], key=key)
    replay = hank.post(
        "/api/orders/",
        {"lines": [{"sku": sku, "quantity": 1}], "payment": {"card_token": "tok_visa"}},
        headers={"Idempotency-Key": key},
    )
    assert replay.status == 202 and replay.body["id"] == first["id"]
    mismatch = hank.post("/api/orders/", {"lines": [{"sku": sku, "quantity": 2}]}, headers={"Idempotency-Key": key})
    assert mismatch.status == 422 and mismatch.headers["Content-Type"] == "application/problem+json"
    assert hank.get("/api/orders/").body["count"] == 1


def test_other_customers_order_is_404(shop):
    sku = shop.product(price="1.00", stock=1)
    ivy, jack = shop.customer(), shop.customer()
    order = shop.place(ivy, [(sku, 1)])
    for path in ["", "timeline/"]:
        assert jack.get(f"/api/orders/{order['id']}/{path}").status == 404
    assert jack.post(f"/api/orders/{order['id']}/cancel/", {}).status == 404
    assert jack.get(f"/api/payments/?order={order['id']}").body == []


def test_duplicated_and_late_replies_change_nothing(shop, stack):
    sku = shop.product(price="2.00", stock=5)
    kate = shop.customer()
    order = shop.place(kate, [(sku, 1)])
    shop.wait(kate, order["id"], status="CONFIRMED", stock_status="COMMITTED", payment_status="CAPTURED")
    # Re-publish inventory's StockReserved twice: once with its own id (a redelivery), once with a
    # new id (a duplicated reply); and a PaymentDeclined for the confirmed order (a late reply).
    topic = f"{stack.namespace}.inventory.reservation"
    reserved = next(e for e in shop.timeline(kate, order["id"]) if e["type"] == "StockReserved")
    with pg_connect(stack.database("inventory")) as conn:
        event_id, payload = conn.execute(
            "SELECT id::text, payload::text FROM inventory_outboxevent WHERE aggregateid = %s AND type LIKE %s",
            [order["id"], "%StockReserved%"],
        ).fetchone()
    assert json.loads(payload)["order_id"] == reserved["data"]["order_id"]
    producer = Producer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})

    def send(topic_name: str, ce_type: str, ce_id: str, data: str) -> None:
        headers = [
            ("ce_specversion", "1.0"),
            ("ce_id", ce_id),
            ("ce_type", ce_type),
            ("ce_source", "/e2e"),
            ("ce_subject", order["id"]),
            ("ce_time", datetime.now(UTC).isoformat()),
        ]
        producer.produce(topic_name, key=order["id"], value=data, headers=headers)

    send(topic, "orderflow.inventory.StockReserved.v1", event_id, payload)
    send(topic, "orderflow.inventory.StockReserved.v1", str(uuid.uuid4()), payload)
    declined = {
        "payment_id": str(uuid.uuid4()),
        "order_id": order["id"],
        "amount": order["total"],
        "reason": "card_declined",
    }
    send(
        f"{stack.namespace}.payments.payment",
        "orderflow.payments.PaymentDeclined.v1",
        str(uuid.uuid4()),
        json.dumps(declined),
    )
    assert producer.flush(10) == 0

    def noted():
        entries = shop.timeline(kate, order["id"])
        return [e for e in entries if e["data"].get("note")] if len(entries) >= 2 else None

    notes = eventually(lambda: (n := noted()) and len(n) == 2 and n, message="two noted replies")
    assert {e["type"] for e in notes} == {"StockReserved", "PaymentDeclined"}
    final = kate.get(f"/api/orders/{order['id']}/").body
    assert (final["status"], final["stock_status"], final["payment_status"]) == ("CONFIRMED", "COMMITTED", "CAPTURED")
    assert shop.stock(sku) == {"sku": sku, "on_hand": 4, "reserved": 0, "available": 4}
    assert len(shop.payments(kate, order["id"])) == 1


def test_price_changes_and_discontinuation_reach_orders(shop):
    sku = shop.product(price="10.00", stock=10)
    lena = shop.customer()
    before = shop.place(lena, [(sku, 1)])
    assert before["total"]["amount"] == "10.00"
    assert (
        shop.staff.patch(f"/api/catalog/products/{sku}/", {"price": {"amount": "8.00", "currency": "USD"}}).status
        == 200
    )

    def repriced():
        body = {"lines": [{"sku": sku, "quantity": 1}]}
        response = lena.post("/api/orders/", body)
        if response.body["total"]["amount"] == "8.00":
            shop.orders.append((lena, response.body["id"]))
            return response.body
        shop.orders.append((lena, response.body["id"]))
        return None

    assert eventually(repriced, message="new price used")["lines"][0]["unit_price"]["amount"] == "8.00"
    assert shop.wait(lena, before["id"], status="CONFIRMED")["total"]["amount"] == "10.00"  # price at placement

    assert shop.staff.patch(f"/api/catalog/products/{sku}/", {"active": False}).status == 200
    refused = eventually(
        lambda: (r := lena.post("/api/orders/", {"lines": [{"sku": sku, "quantity": 1}]})).status == 400 and r,
        message="discontinued sku refused",
    )
    assert refused.body["errors"][0]["field"] == "lines.0.sku"


def test_invariants_hold_after_every_scenario(shop):
    """architecture.md: whenever no order is PENDING, whatever was retried, duplicated or crashed."""
    orders = assert_invariants(shop)
    assert orders and {o["status"] for o in orders} <= FINAL

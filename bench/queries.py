"""Round trips per operation: the SQL statements one order placement and one consumed event cost.

Profiles show the HTTP request and the consumers waiting on PostgreSQL most of the time; this
counts why. In one process (Django test client for the request, the production consumer's
`apply` for events, fed an in-memory record) it captures every statement per database alias:

- `POST /api/orders/` (middleware, JWT, validation, order_place, read model, response)
- inventory applying OrderPlaced (inbox claim + reserve stock + outbox)
- orders applying StockReserved and then PaymentAuthorized (inbox claim + saga reply → CONFIRMED)

Run by `python -m bench --profile`: `python -m bench.queries --out FILE`.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench import task


class FakeRecord:
    """What ContextConsumer.apply reads from a confluent_kafka Message."""

    def __init__(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self._topic, self._key, self._value, self._headers = topic, key, value, headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def key(self) -> bytes:
        return self._key.encode()

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def error(self) -> None:
        return None


def _shape(sql: str) -> str:
    words = sql.split()
    head = " ".join(words[:3])
    if words and words[0] in ("SELECT", "UPDATE", "DELETE") and "FROM" in words:
        head = f"{words[0]} … FROM {words[words.index('FROM') + 1]}"
    elif words and words[0] == "INSERT":
        head = " ".join(words[:3])
    elif words and words[0] == "UPDATE":
        head = " ".join(words[:2])
    if words and words[0] in ("SAVEPOINT", "RELEASE"):
        head = "RELEASE SAVEPOINT" if words[0] == "RELEASE" else "SAVEPOINT"
    return head.replace('"', "")[:90]


def captured(aliases: list[str], action) -> dict[str, Any]:
    contexts = [CaptureQueriesContext(connections[a]) for a in aliases]
    for ctx in contexts:
        ctx.__enter__()
    try:
        action()  # prepared statements included: orderflow.messaging.bulk.PreparedCursor logs them
    finally:
        for ctx in contexts:
            ctx.__exit__(None, None, None)
    out: dict[str, Any] = {"statements": 0, "by_alias": {}}
    for alias, ctx in zip(aliases, contexts, strict=True):
        queries = [q["sql"] for q in ctx.captured_queries]
        shapes = Counter(_shape(sql) for sql in queries)
        out["statements"] += len(queries)
        out["by_alias"][alias] = {"count": len(queries), "shapes": dict(shapes.most_common())}
    return out


def _envelope_record(event_type, subject: str, data: dict) -> FakeRecord:
    from orderflow.messaging.envelope import Envelope
    from orderflow.messaging.kafka import topic_name

    envelope = Envelope(
        id=str(uuid.uuid4()),
        type=event_type.type,
        source=f"/orderflow/{event_type.context}",
        subject=subject,
        time=datetime.now(UTC),
        data=data,
    )
    return FakeRecord(topic_name(event_type.stream), subject, envelope.value(), envelope.headers())


def main(args: argparse.Namespace) -> dict[str, Any]:
    import contracts.inventory as inventory_events
    import contracts.orders as order_events
    import contracts.payments as payment_events
    from bench.stack import ORDER_BODY, SKUS
    from orderflow.messaging.consumer import ContextConsumer

    with connections["orders"].cursor() as cursor:
        cursor.execute(
            "INSERT INTO orders_productprice (sku, price_amount, price_currency, active, updated_at) "
            "SELECT unnest(%s::text[]), 19.99, 'USD', true, now()",
            [SKUS],
        )
    with connections["inventory"].cursor() as cursor:
        cursor.execute(
            "INSERT INTO inventory_stockitem (sku, on_hand, reserved, updated_at) "
            "SELECT unnest(%s::text[]), 1000000, 0, now()",
            [SKUS],
        )
    client = Client(HTTP_HOST="127.0.0.1")
    email = f"q-{uuid.uuid4().hex[:8]}@example.com"
    client.post("/api/customers/", {"email": email, "password": "bench-password", "name": "Q"}, "application/json")
    token = client.post("/api/auth/token/", {"email": email, "password": "bench-password"}, "application/json").json()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token['access']}"}
    client.post("/api/orders/", json.loads(ORDER_BODY), "application/json", **auth)  # warm caches first

    results: dict[str, Any] = {}
    placed: dict[str, Any] = {}

    def place() -> None:
        response = client.post("/api/orders/", json.loads(ORDER_BODY), "application/json", **auth)
        placed.update(response.json())

    results["POST /api/orders/"] = captured(["default", "orders"], place)
    order_id = placed["id"]
    lines = [{"sku": ln["sku"], "quantity": ln["quantity"]} for ln in placed["lines"]]
    order_placed = {
        "order_id": order_id,
        "customer_id": str(uuid.uuid4()),
        "lines": placed["lines"],
        "total": placed["total"],
        "card_token": "tok_visa",
    }
    inventory = ContextConsumer("inventory", group_id="bench.queries.inventory")
    record = _envelope_record(order_events.OrderPlaced, order_id, order_placed)
    results["inventory applies OrderPlaced"] = captured(["inventory"], lambda: inventory.apply(record))
    orders = ContextConsumer("orders", group_id="bench.queries.orders")
    reserved = _envelope_record(inventory_events.StockReserved, order_id, {"order_id": order_id, "lines": lines})
    results["orders applies StockReserved"] = captured(["orders"], lambda: orders.apply(reserved))
    authorized = _envelope_record(
        payment_events.PaymentAuthorized,
        order_id,
        {"order_id": order_id, "payment_id": str(uuid.uuid4()), "amount": placed["total"]},
    )
    try:
        results["orders applies PaymentAuthorized (→ CONFIRMED)"] = captured(
            ["orders"], lambda: orders.apply(authorized)
        )
    except Exception as exc:  # the contract may need other fields: report rather than fail
        results["orders applies PaymentAuthorized (→ CONFIRMED)"] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def configure(parser: argparse.ArgumentParser) -> None:
    pass


if __name__ == "__main__":
    task.run(main, configure)

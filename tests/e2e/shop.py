"""A user's-eye view of the running stack: staff and customers acting over HTTP."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from orderflow.contexts_registry import ALL_CONTEXTS
from tests.e2e.conftest import Http, Stack, eventually
from tests.fixtures.processes import pg_connect

FINAL = {"CONFIRMED", "CANCELLED", "SHIPPED", "DELIVERED"}
KEPT = {"CONFIRMED", "SHIPPED", "DELIVERED"}
# Where an order's two participant statuses end once its saga and compensations are done.
SETTLED = {
    "kept": ({"COMMITTED"}, {"CAPTURED"}),
    "CANCELLED": ({"REJECTED", "RELEASED"}, {"DECLINED", "VOIDED", "REFUNDED"}),
}


@dataclass
class Shop:
    stack: Stack
    staff: Http
    initial_stock: dict[str, int] = field(default_factory=dict)
    orders: list[tuple[Http, str]] = field(default_factory=list)

    def customer(self) -> Http:
        email = f"c-{uuid.uuid4().hex[:10]}@example.com"
        http = self.stack.http()
        assert http.post("/api/customers/", {"email": email, "password": "e2e-password", "name": "E2E"}).status == 201
        return http.login(email, "e2e-password")

    def product(self, *, price: str, stock: int) -> str:
        """A new product with `stock` units, once every context that needs it has it."""
        sku = f"SKU-E2E-{uuid.uuid4().hex[:8].upper()}"
        body = {"sku": sku, "name": f"E2E {sku}", "description": "e2e", "price": {"amount": price, "currency": "USD"}}
        assert self.staff.post("/api/catalog/products/", body).status == 201
        http = self.stack.http()
        eventually(lambda: http.get(f"/api/inventory/stock/{sku}/").status == 200, message=f"{sku} stock row")
        assert self.staff.post(f"/api/inventory/stock/{sku}/adjust/", {"delta": stock, "reason": "e2e"}).status == 200
        self.initial_stock[sku] = stock
        return sku

    def place(
        self, customer: Http, lines: list[tuple[str, int]], *, card: str = "tok_visa", key: str | None = None
    ) -> dict:
        """POST /api/orders/, retrying while orders' price replica has not seen the product (400)."""
        body = {"lines": [{"sku": s, "quantity": q} for s, q in lines], "payment": {"card_token": card}}
        headers = {"Idempotency-Key": key} if key else None

        def attempt():
            response = customer.post("/api/orders/", body, headers=headers)
            assert response.status in (202, 400), response.body
            return response if response.status == 202 else None

        response = eventually(attempt, message="order accepted")
        self.orders.append((customer, response.body["id"]))
        return response.body

    def wait(self, customer: Http, order_id: str, **expected: str) -> dict:
        def check():
            order = customer.get(f"/api/orders/{order_id}/").body
            return order if all(order.get(k) == v for k, v in expected.items()) else None

        return eventually(check, message=f"order {order_id} to reach {expected}")

    def timeline(self, customer: Http, order_id: str) -> list[dict]:
        return customer.get(f"/api/orders/{order_id}/timeline/").body

    def stock(self, sku: str) -> dict:
        return self.stack.http().get(f"/api/inventory/stock/{sku}/").body

    def payments(self, customer: Http, order_id: str) -> list[dict]:
        response = customer.get(f"/api/payments/?order={order_id}")
        assert response.status == 200, response.body
        return response.body

    @contextmanager
    def paused(self, process: str) -> Iterator[None]:
        """Freeze a process (SIGSTOP) so the saga waits on it, then let it go on (SIGCONT)."""
        pid = self.stack.supervisor.pid(process)
        assert pid is not None, f"{process} is not running"
        os.killpg(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(pid, signal.SIGCONT)


def money(value: dict) -> Decimal:
    return Decimal(value["amount"])


def all_orders(shop: Shop) -> list[dict]:
    """Every order of the stack, as staff sees it over HTTP."""
    orders, page = [], "/api/orders/?page=1"
    while page:
        body = shop.staff.get(page).body
        orders += body["results"]
        page = body["next"] and body["next"].replace(shop.stack.base, "")
    return orders


@dataclass(frozen=True)
class Violation:
    message: str
    order_id: str | None = None

    def __str__(self) -> str:
        return self.message


def invariant_violations(shop: Shop, orders: list[dict]) -> list[Violation]:
    """architecture.md's invariants over `orders` (every order of the stack) and the messaging
    backbone's guarantees; empty when they all hold. Only meaningful once no order is PENDING."""
    stack, found = shop.stack, []
    found += [Violation(f"order {o['id']} is {o['status']}", o["id"]) for o in orders if o["status"] not in FINAL]
    kept = [o for o in orders if o["status"] in KEPT]
    for o in orders:  # compensations done: each participant's status matches the outcome
        stock, payment = SETTLED["kept" if o["status"] in KEPT else "CANCELLED"]
        if o["stock_status"] not in stock or o["payment_status"] not in payment:
            message = f"order {o['id']} is {o['status']} with stock {o['stock_status']}, payment {o['payment_status']}"
            found.append(Violation(message, o["id"]))

    for sku, initial in shop.initial_stock.items():
        sold = sum(line["quantity"] for o in kept for line in o["lines"] if line["sku"] == sku)
        stock = shop.stock(sku)
        if stock["on_hand"] + sold != initial or stock["reserved"] != 0:
            found.append(Violation(f"{sku}: initial {initial} != on_hand {stock['on_hand']} + sold {sold}, or {stock}"))

    with pg_connect(stack.database("payments")) as conn:
        per_order = dict(conn.execute("SELECT order_id::text, count(*) FROM payments_payment GROUP BY order_id"))
        by_status = dict(conn.execute("SELECT status, coalesce(sum(amount), 0) FROM payments_payment GROUP BY status"))
        authorized = [
            r[0] for r in conn.execute("SELECT order_id::text FROM payments_payment WHERE status = 'AUTHORIZED'")
        ]
    ids = {o["id"] for o in orders}
    found += [Violation(f"order {i} has no payment", i) for i in sorted(ids - set(per_order))]
    found += [Violation(f"payment for unknown order {i}", i) for i in sorted(set(per_order) - ids)]
    found += [Violation(f"order {i} has {n} payments", i) for i, n in per_order.items() if n != 1]
    found += [Violation(f"payment of order {i} left AUTHORIZED", i) for i in authorized]
    # Refunds are whole, so captured - refunded is what is still CAPTURED.
    kept_total = sum((money(o["total"]) for o in kept), Decimal("0"))
    if by_status.get("CAPTURED", Decimal("0")) != kept_total:
        found.append(Violation(f"captured - refunded = {by_status.get('CAPTURED', 0)} != kept orders' {kept_total}"))

    with pg_connect(stack.database("notifications")) as conn:
        repeated = conn.execute(
            "SELECT order_id::text, kind FROM notifications_notification GROUP BY order_id, kind HAVING count(*) > 1"
        ).fetchall()
    found += [Violation(f"order {i}: more than one {kind} notification", i) for i, kind in repeated]
    return found + messaging_violations(stack)


def messaging_violations(stack: Stack) -> list[Violation]:
    """Every committed outbox row was published, and applied exactly once by every consumer
    subscribed to its type (one inbox row per consumer and event id)."""
    from orderflow.messaging.consumer import subscriptions

    found, outboxes = [], {}
    for context in ALL_CONTEXTS:
        with pg_connect(stack.database(context)) as conn:
            outboxes[context] = conn.execute(
                "SELECT id::text, type, aggregateid, payload->>'order_id', published_at IS NOT NULL, attempts, "
                f"last_error FROM {context}_outboxevent"
            ).fetchall()
        for event_id, type_, aggregate, order_id, published, attempts, error in outboxes[context]:
            if not published:
                message = f"{context} outbox: {type_} {event_id} of {aggregate} unpublished ({attempts}x: {error!r})"
                found.append(Violation(message, order_id))
    for consumer in ALL_CONTEXTS:
        wanted = set(subscriptions(consumer))
        if not wanted:
            continue
        with pg_connect(stack.database(consumer)) as conn:
            applied = {r[0] for r in conn.execute(f"SELECT event_id FROM {consumer}_inboxevent")}
            repeated = conn.execute(
                f"SELECT consumer, event_id FROM {consumer}_inboxevent GROUP BY consumer, event_id HAVING count(*) > 1"
            ).fetchall()
        found += [Violation(f"{consumer} inbox: {name} applied {event_id} twice") for name, event_id in repeated]
        for context, rows in outboxes.items():
            for event_id, type_, aggregate, order_id, *_ in rows:
                if type_ in wanted and event_id not in applied:
                    message = f"{consumer} never applied {context}'s {type_} {event_id} of {aggregate}"
                    found.append(Violation(message, order_id))
    return found


def assert_invariants(shop: Shop, *, timeout: float = 30.0) -> list[dict]:
    """Wait (each stage up to `timeout` s) until no order is PENDING and then until the
    compensations have settled so every invariant holds; fail with what still does not. Returns
    every order of the stack."""
    pending: list[dict] = []

    def none_pending() -> bool:
        pending[:] = shop.staff.get("/api/orders/?status=PENDING").body["results"]
        return not pending

    try:
        eventually(none_pending, timeout=timeout, interval=0.5, message="no PENDING order")
    except AssertionError:
        raise AssertionError(f"orders still PENDING after {timeout}s: {[o['id'] for o in pending]}") from None
    state: dict = {}

    def holds() -> bool:
        state["orders"] = all_orders(shop)
        state["violations"] = invariant_violations(shop, state["orders"])
        return not state["violations"]

    try:
        eventually(holds, timeout=timeout, interval=1.0, message="invariants")
    except AssertionError:
        violations = state["violations"]
        listed = "\n  ".join(str(v) for v in violations[:40])
        raise AssertionError(f"{len(violations)} invariant violation(s) after {timeout}s:\n  {listed}") from None
    return state["orders"]

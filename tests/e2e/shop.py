"""A user's-eye view of the running stack: staff and customers acting over HTTP."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from tests.e2e.conftest import Http, Stack, eventually

FINAL = {"CONFIRMED", "CANCELLED", "SHIPPED", "DELIVERED"}


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

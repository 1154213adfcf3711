"""Batch updates joined to a JSON document of rows find those rows through the primary key,
however small the batch and however large the table (orderflow/messaging/bulk.py, decision 52).

Joined to `json_to_recordset` alone, the planner guessed 100 rows for the document and hashed it
against a sequential scan of the whole table while the table was below some 30,000 rows: every
saga reply's update cost more as orders accumulated. Each test reads the scans PostgreSQL counted
on the table in the test's own transaction (`pg_stat_xact_user_tables`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connections, transaction

from contexts.inventory import services as inventory
from contexts.inventory.models import StockItem
from contexts.orders import saga_store
from contexts.orders.models import Order, OrderView
from contexts.payments import services as payments
from contexts.payments.models import Payment

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

ROWS = 3000  # well below the size where the old plan would have turned to the index by itself
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _analyze(db: str, table: str) -> None:
    with connections[db].cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def _scans(db: str, table: str) -> tuple[int, int]:
    """(sequential, index) scans of `table` so far in the current transaction."""
    with connections[db].cursor() as cursor:
        cursor.execute(
            "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = %s", [table]
        )
        return cursor.fetchone()


@pytest.mark.parametrize("model", [Order, OrderView], ids=["orders", "read model"])
def test_order_status_updates_find_their_rows_by_primary_key(model):
    rows = [
        Order(id=uuid.uuid4(), customer_id=uuid.uuid4(), total_amount=1, currency="USD")
        if model is Order
        else OrderView(
            id=uuid.uuid4(),
            customer_id=uuid.uuid4(),
            status="PENDING",
            stock_status="PENDING",
            payment_status="PENDING",
            lines=[],
            total={"amount": "1.00", "currency": "USD"},
            created_at=NOW,
            updated_at=NOW,
        )
        for _ in range(ROWS)
    ]
    model.objects.using("orders").bulk_create(rows)
    _analyze("orders", model._meta.db_table)
    target = rows[ROWS // 2].id
    with transaction.atomic(using="orders"):
        saga_store.update_statuses(
            rows=[(target, "CONFIRMED", "RESERVED", "AUTHORIZED", "")], now=NOW, views=model is OrderView
        )
        sequential, by_index = _scans("orders", model._meta.db_table)
    assert (sequential, by_index) == (0, 1)
    assert model.objects.using("orders").get(id=target).status == "CONFIRMED"


def test_payment_status_updates_find_their_rows_by_primary_key():
    rows = [
        Payment(
            id=uuid.uuid4(), order_id=uuid.uuid4(), customer_id=uuid.uuid4(), amount=1, currency="USD", status=status
        )
        for status in ["AUTHORIZED"] + ["CAPTURED"] * (ROWS - 1)
    ]
    Payment.objects.using("payments").bulk_create(rows)
    _analyze("payments", "payments_payment")
    with transaction.atomic(using="payments"):
        before, _ = _scans("payments", "payments_payment")
        captured = payments.orders_capture(orders=[payments.OrderRef(rows[0].order_id)])
        sequential, _ = _scans("payments", "payments_payment")
    assert captured == [rows[0].order_id]
    assert sequential == before  # the lock read and the update both went through an index
    assert Payment.objects.using("payments").get(id=rows[0].id).status == "CAPTURED"


def test_stock_updates_find_their_rows_by_primary_key():
    StockItem.objects.using("inventory").bulk_create(
        StockItem(sku=f"SKU-PLAN-{n:05d}", on_hand=10) for n in range(ROWS)
    )
    _analyze("inventory", "inventory_stockitem")
    order_id = uuid.uuid4()
    with transaction.atomic(using="inventory"):
        before, _ = _scans("inventory", "inventory_stockitem")
        inventory.orders_reserve(
            orders=[inventory.OrderToReserve(order_id, [{"sku": "SKU-PLAN-01500", "quantity": 2}])]
        )
        sequential, _ = _scans("inventory", "inventory_stockitem")
        committed = inventory.orders_commit(orders=[inventory.OrderRef(order_id)])
        after_commit, _ = _scans("inventory", "inventory_stockitem")
    assert (sequential, after_commit) == (before, before)  # reserving and committing: no table scan
    assert committed == [order_id]
    item = StockItem.objects.using("inventory").get(sku="SKU-PLAN-01500")
    assert (item.on_hand, item.reserved) == (8, 0)

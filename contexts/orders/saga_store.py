"""SQL of the saga's batch path (`services.saga_replies`): the rows a consumer batch of replies
changes, one statement per table.

Every order makes six replies come back to orders (stock and payment answers, their commit and
capture, the notification); applied one by one through the ORM that was six to eight round trips
each and most of the orders consumer's time, the saga's serial step. Here a batch of replies costs
the same few statements whatever its size. The rows travel as one JSON document
(`orderflow.messaging.bulk.json_rows`) and the values are those the ORM would write;
tests/integration/test_orders_saga_batch.py checks the outcome against the one-by-one path.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connections

from contexts.orders import domain
from contexts.orders.models import Order, OrderLine, OrderView, TimelineEntry
from orderflow.domain import Money
from orderflow.messaging import bulk
from orderflow.messaging.bulk import json_rows

DB = "orders"
STATUS_COLUMNS = ("id", "status", "stock_status", "payment_status", "cancellation_reason")


def _table(model) -> str:
    return connections[DB].ops.quote_name(model._meta.db_table)


def lock_orders(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, domain.Order]:
    """These orders as aggregates, with their lines, locked (FOR UPDATE, in id order so two
    batches never wait on each other in a cycle). Written out rather than built by the ORM: at
    low rates a batch is one or two replies, and compiling the ORM's query cost more than the
    rest of the batch."""
    if not ids:
        return {}
    with bulk.PreparedCursor(DB) as cursor:
        cursor.execute(
            "SELECT o.id, o.customer_id, o.status, o.stock_status, o.payment_status, o.cancellation_reason, "
            "o.total_amount, o.currency, (SELECT jsonb_agg(jsonb_build_array(l.sku, l.quantity, "
            f"l.unit_price_amount::text) ORDER BY l.position) FROM {_table(OrderLine)} AS l WHERE l.order_id = o.id) "
            f"FROM {_table(Order)} AS o WHERE o.id = ANY(%s) ORDER BY o.id FOR UPDATE OF o",
            [list(ids)],
        )
        rows = cursor.fetchall()
    orders = {}
    # Django's connections read jsonb as text (its JSONField decodes), so the lines come as JSON text.
    for order_id, customer_id, status, stock, payment, reason, total, currency, lines in rows:
        orders[order_id] = domain.Order(
            id=order_id,
            customer_id=customer_id,
            lines=tuple(
                domain.OrderLine(sku, quantity, Money(Decimal(amount), currency))
                for sku, quantity, amount in json.loads(lines or "[]")
            ),
            total=Money(total, currency),
            status=domain.OrderStatus(status),
            stock_status=domain.StockStatus(stock),
            payment_status=domain.PaymentStatus(payment),
            cancellation_reason=reason,
        )
    return orders


def update_statuses(*, rows: Sequence[tuple[uuid.UUID, str, str, str, str]], now: datetime, views: bool) -> None:
    """Set the statuses (STATUS_COLUMNS) of these orders, or of their read-model rows."""
    if not rows:
        return
    table = _table(OrderView if views else Order)
    with bulk.PreparedCursor(DB) as cursor:
        # `t.id = ANY(…)`: the rows are found through the primary key (see bulk.json_rows).
        cursor.execute(
            f"UPDATE {table} AS t SET status = r.status, stock_status = r.stock_status, "
            "payment_status = r.payment_status, cancellation_reason = r.cancellation_reason, updated_at = %s "
            "FROM json_to_recordset(%s::json) AS r(id uuid, status text, stock_status text, payment_status text, "
            "cancellation_reason text) WHERE t.id = r.id AND t.id = ANY(%s::uuid[])",
            [now, json_rows(STATUS_COLUMNS, rows), [row[0] for row in rows]],
        )


def insert_timeline(
    *, rows: Sequence[tuple[uuid.UUID, str, str, str, datetime, dict[str, Any]]], now: datetime
) -> None:
    """Add timeline entries (order_id, event_id, type, source, occurred_at, data) in the given
    order; an entry already there (the same order, event and type) is left as it is."""
    if not rows:
        return
    numbered = [(n, *row) for n, row in enumerate(rows)]
    with bulk.PreparedCursor(DB) as cursor:
        cursor.execute(
            f"INSERT INTO {_table(TimelineEntry)} (order_id, event_id, type, source, occurred_at, data, recorded_at) "
            "SELECT r.order_id, r.event_id, r.type, r.source, r.occurred_at, r.data, %s "
            "FROM json_to_recordset(%s::json) AS r(n integer, order_id uuid, event_id text, type text, source text, "
            "occurred_at timestamptz, data jsonb) ORDER BY r.n "
            "ON CONFLICT (order_id, event_id, type) DO NOTHING",
            [now, json_rows(("n", "order_id", "event_id", "type", "source", "occurred_at", "data"), numbered)],
        )

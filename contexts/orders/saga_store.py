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

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections

from contexts.orders.models import Order, OrderView, TimelineEntry
from orderflow.messaging.bulk import json_rows

DB = "orders"
STATUS_COLUMNS = ("id", "status", "stock_status", "payment_status", "cancellation_reason")


def _table(model) -> str:
    return connections[DB].ops.quote_name(model._meta.db_table)


def update_statuses(*, rows: Sequence[tuple[uuid.UUID, str, str, str, str]], now: datetime, views: bool) -> None:
    """Set the statuses (STATUS_COLUMNS) of these orders, or of their read-model rows."""
    if not rows:
        return
    table = _table(OrderView if views else Order)
    with connections[DB].cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET status = r.status, stock_status = r.stock_status, "
            "payment_status = r.payment_status, cancellation_reason = r.cancellation_reason, updated_at = %s "
            "FROM json_to_recordset(%s::json) AS r(id uuid, status text, stock_status text, payment_status text, "
            "cancellation_reason text) WHERE t.id = r.id",
            [now, json_rows(STATUS_COLUMNS, rows)],
        )


def insert_timeline(
    *, rows: Sequence[tuple[uuid.UUID, str, str, str, datetime, dict[str, Any]]], now: datetime
) -> None:
    """Add timeline entries (order_id, event_id, type, source, occurred_at, data) in the given
    order; an entry already there (the same order, event and type) is left as it is."""
    if not rows:
        return
    numbered = [(n, *row) for n, row in enumerate(rows)]
    with connections[DB].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_table(TimelineEntry)} (order_id, event_id, type, source, occurred_at, data, recorded_at) "
            "SELECT r.order_id, r.event_id, r.type, r.source, r.occurred_at, r.data, %s "
            "FROM json_to_recordset(%s::json) AS r(n integer, order_id uuid, event_id text, type text, source text, "
            "occurred_at timestamptz, data jsonb) ORDER BY r.n "
            "ON CONFLICT (order_id, event_id, type) DO NOTHING",
            [now, json_rows(("n", "order_id", "event_id", "type", "source", "occurred_at", "data"), numbered)],
        )

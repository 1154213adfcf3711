"""SQL of the order placement path: the replicas it reads and the rows it writes, one prepared
statement each.

Placing an order is the hot path of the public API. Through the ORM it was eleven round trips to
PostgreSQL (BEGIN, two replica reads, six INSERTs, COMMIT, and re-reading the read model for the
response), each a system call and a context switch on both sides; the HTTP benchmark found the web
tier CPU-bound there. Here it is two: one read of both replicas, and one statement of
data-modifying CTEs that writes the order, its lines, the read model row, the timeline entry, the
outbox row and the idempotency key. A single statement is a single transaction in PostgreSQL (all
rows or none) and the foreign keys, deferred, are checked when it commits. The values are exactly
those the ORM models would write; tests/integration/test_order_store.py checks them row by row.
"""

from __future__ import annotations

import json
import uuid

from django.db import connections

from contexts.orders import domain
from contexts.orders.models import (
    CustomerStatus,
    IdempotencyKey,
    Order,
    OrderLine,
    OrderView,
    OutboxEvent,
    ProductPrice,
    TimelineEntry,
)
from orderflow.domain import Money
from orderflow.messaging import bulk
from orderflow.messaging.outbox import OutboxRow

DB = "orders"


def _table(model) -> str:
    return connections[DB].ops.quote_name(model._meta.db_table)


def replicas(*, customer_id: uuid.UUID, skus: list[str]) -> tuple[bool | None, dict[str, domain.PriceQuote]]:
    """(is the customer active — None if orders has not heard of them yet, {sku: quote})."""
    rows = bulk.execute(
        DB,
        f"SELECT sku, price_amount, price_currency, active FROM {_table(ProductPrice)} WHERE sku = ANY(%s) "
        f"UNION ALL SELECT NULL, NULL, NULL, active FROM {_table(CustomerStatus)} WHERE customer_id = %s",
        [skus, customer_id],
        fetch=True,
    )
    active = None
    quotes = {}
    for sku, amount, currency, is_active in rows:
        if sku is None:
            active = is_active
        else:
            quotes[sku] = domain.PriceQuote(sku, Money(amount, currency), is_active)
    return active, quotes


_IDEMPOTENCY_CTE = """, new_key AS (
    INSERT INTO {key} (customer_id, key, request_hash, order_id, created_at)
    SELECT (j->>'customer_id')::uuid, j->>'idempotency_key', j->>'request_hash', (j->>'id')::uuid,
           (j->>'at')::timestamptz
    FROM p
)"""

# Every value travels in one JSON parameter: psycopg adapts each parameter in Python (dumping,
# reordering named ones), which for the 25 values of an order cost more web CPU than the rest of
# the statement's round trip; PostgreSQL reads them out of the document in microseconds.
_INSERT_PLACED = """
WITH p AS (SELECT %s::jsonb AS j), new_order AS (
    INSERT INTO {order} (id, customer_id, status, stock_status, payment_status, cancellation_reason,
                         total_amount, currency, created_at, updated_at)
    SELECT (j->>'id')::uuid, (j->>'customer_id')::uuid, j->>'status', j->>'stock_status',
           j->>'payment_status', '', (j->>'total_amount')::numeric, j->>'currency',
           (j->>'at')::timestamptz, (j->>'at')::timestamptz
    FROM p
), new_lines AS (
    INSERT INTO {line} (order_id, position, sku, quantity, unit_price_amount)
    SELECT (p.j->>'id')::uuid, l.position, l.sku, l.quantity, l.unit_price_amount
    FROM p, jsonb_to_recordset(p.j->'lines') AS l(position int, sku text, quantity int, unit_price_amount numeric)
), new_view AS (
    INSERT INTO {view} (id, customer_id, status, stock_status, payment_status, cancellation_reason,
                        lines, total, created_at, updated_at)
    SELECT (j->>'id')::uuid, (j->>'customer_id')::uuid, j->>'status', j->>'stock_status',
           j->>'payment_status', '', j->'view_lines', j->'view_total', (j->>'at')::timestamptz,
           (j->>'at')::timestamptz
    FROM p
), new_entry AS (
    INSERT INTO {timeline} (order_id, event_id, type, source, occurred_at, data, recorded_at)
    SELECT (j->>'id')::uuid, j->>'event_id', j->>'timeline_type', 'orders', (j->>'at')::timestamptz,
           j->'timeline_data', (j->>'at')::timestamptz
    FROM p
){idempotency}
INSERT INTO {outbox} (id, aggregatetype, aggregateid, type, payload, topic, headers, occurred_at,
                      published_at, attempts, last_error, next_attempt_at)
SELECT (j->>'event_id')::uuid, j->>'aggregatetype', j->>'aggregateid', j->>'event_type', j->'payload',
       j->>'topic', j->'headers', (j->>'occurred_at')::timestamptz, NULL, 0, '', NULL
FROM p
"""


def insert_placed(
    *,
    view: OrderView,
    order: domain.Order,
    event: OutboxRow,
    timeline_type: str,
    timeline_data: dict,
    idempotency: tuple[str, str] | None,
) -> None:
    """Write a placed order in one statement. `idempotency` is (key, request hash) or None; a key
    already taken raises IntegrityError and writes nothing."""
    sql = _INSERT_PLACED.format(
        order=_table(Order),
        line=_table(OrderLine),
        view=_table(OrderView),
        timeline=_table(TimelineEntry),
        outbox=_table(OutboxEvent),
        idempotency=_IDEMPOTENCY_CTE.format(key=_table(IdempotencyKey)) if idempotency else "",
    )
    document = {
        "id": str(order.id),
        "customer_id": str(order.customer_id),
        "status": order.status.value,
        "stock_status": order.stock_status.value,
        "payment_status": order.payment_status.value,
        "total_amount": str(order.total.amount),
        "currency": order.total.currency,
        "at": view.created_at.isoformat(),
        "lines": [
            {
                "position": n,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_amount": str(line.unit_price.amount),
            }
            for n, line in enumerate(order.lines)
        ],
        "view_lines": view.lines,
        "view_total": view.total,
        "timeline_type": timeline_type,
        "timeline_data": timeline_data,
        "event_id": str(event.event_id),
        "aggregatetype": event.aggregatetype,
        "aggregateid": event.aggregateid,
        "event_type": event.type,
        "payload": event.payload,
        "topic": event.topic,
        "headers": event.headers,
        "occurred_at": event.occurred_at.isoformat(),
    }
    if idempotency:
        document["idempotency_key"], document["request_hash"] = idempotency
    bulk.execute(DB, sql, [json.dumps(document, separators=(",", ":"))])

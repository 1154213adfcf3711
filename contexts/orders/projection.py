"""Project the Order aggregate's domain events into the read model (`OrderView`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from contexts.orders import domain
from contexts.orders.models import OrderView
from orderflow.domain import DomainEvent

DB = "orders"


def placed_view(event: domain.Placed, *, at: datetime) -> OrderView:
    """The read model row of a just-placed order (not saved)."""
    return OrderView(
        id=event.order_id,
        customer_id=event.customer_id,
        status=domain.OrderStatus.PENDING,
        stock_status=domain.StockStatus.PENDING,
        payment_status=domain.PaymentStatus.PENDING,
        cancellation_reason="",
        lines=[
            {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price.to_dict()}
            for line in event.lines
        ],
        total=event.total.to_dict(),
        created_at=at,
        updated_at=at,
    )


def project(events: Iterable[DomainEvent], *, at: datetime) -> None:
    # A reply often moves two or three statuses at once (stock, then the order's own): one UPDATE
    # of the view row for all of them.
    changes: dict[uuid.UUID, dict] = {}
    for event in events:
        if isinstance(event, domain.Placed):
            placed_view(event, at=at).save(using=DB, force_insert=True)
        elif isinstance(event, domain.StatusChanged):
            changes.setdefault(event.order_id, {})[event.field] = event.value
        elif isinstance(event, domain.Cancelled):
            changes.setdefault(event.order_id, {})["cancellation_reason"] = event.reason
    for order_id, fields in changes.items():
        OrderView.objects.using(DB).filter(id=order_id).update(**fields, updated_at=at)

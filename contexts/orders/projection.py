"""Project the Order aggregate's domain events into the read model (`OrderView`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from contexts.orders import domain
from contexts.orders.models import OrderView
from orderflow.domain import DomainEvent

DB = "orders"


def project(events: Iterable[DomainEvent], *, at: datetime) -> None:
    for event in events:
        if isinstance(event, domain.Placed):
            OrderView.objects.using(DB).create(
                id=event.order_id,
                customer_id=event.customer_id,
                status=domain.OrderStatus.PENDING,
                stock_status=domain.StockStatus.PENDING,
                payment_status=domain.PaymentStatus.PENDING,
                lines=[
                    {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price.to_dict()}
                    for line in event.lines
                ],
                total=event.total.to_dict(),
                created_at=at,
                updated_at=at,
            )
        elif isinstance(event, domain.StatusChanged):
            OrderView.objects.using(DB).filter(id=event.order_id).update(**{event.field: event.value, "updated_at": at})
        elif isinstance(event, domain.Cancelled):
            OrderView.objects.using(DB).filter(id=event.order_id).update(cancellation_reason=event.reason)

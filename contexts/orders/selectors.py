"""Read side of orders: the read model, filtered to what the caller may see."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from contexts.orders.models import OrderView, TimelineEntry


def orders_visible(*, principal: uuid.UUID, staff: bool, status: str | None = None) -> QuerySet[OrderView]:
    orders = OrderView.objects.using("orders").all()
    if not staff:
        orders = orders.filter(customer_id=principal)
    if status:
        orders = orders.filter(status=status)
    return orders


def order_visible(*, order_id: uuid.UUID, principal: uuid.UUID, staff: bool) -> OrderView | None:
    """Another customer's order is indistinguishable from a missing one (404, not 403)."""
    return orders_visible(principal=principal, staff=staff).filter(id=order_id).first()


def order_timeline(*, order_id: uuid.UUID) -> QuerySet[TimelineEntry]:
    return TimelineEntry.objects.using("orders").filter(order_id=order_id).order_by("occurred_at", "id")

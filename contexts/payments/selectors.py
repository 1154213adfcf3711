"""Read side of payments: what customers and staff may see."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from contexts.payments.models import Payment


def payments_of_order(*, order_id: uuid.UUID, principal: uuid.UUID, staff: bool) -> QuerySet[Payment]:
    """Owners are known from the customer id replicated off OrderPlaced: another customer's order
    yields nothing, exactly like an order without a payment (never reveal that it exists)."""
    payments = Payment.objects.using("payments").filter(order_id=order_id)
    if not staff:
        payments = payments.filter(customer_id=principal)
    return payments.order_by("created_at")

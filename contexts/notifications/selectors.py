"""Read side of notifications: what a customer may see."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from contexts.notifications.models import Notification


def notifications_of(*, customer_id: uuid.UUID) -> QuerySet[Notification]:
    """Newest first; includes those not sent yet (sent_at is null)."""
    return Notification.objects.using("notifications").filter(customer_id=customer_id).order_by("-created_at", "-id")

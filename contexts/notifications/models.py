from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from contexts.notifications.domain import Kind, Recipient
from orderflow.messaging.models import (
    DeadLetterBase,
    InboxEventBase,
    OutboxEventBase,
    ParkedKeyBase,
    dead_letter_constraints,
    inbox_constraints,
    outbox_indexes,
    parked_key_constraints,
)


class Contact(models.Model):
    """Replica of a customer's contact details, kept from the customers context's events."""

    customer_id = models.UUIDField(primary_key=True)
    # Blank only if a later event (deactivation) arrived for a customer never seen registered.
    email = models.CharField(max_length=254, blank=True, default="")
    name = models.CharField(max_length=200, blank=True, default="")
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return f"{self.email or '(no email)'} ({self.customer_id})"

    def to_domain(self) -> Recipient:
        return Recipient(email=self.email, active=self.active)


class Notification(models.Model):
    """One message about one order; `to_email` stays empty while it cannot (or may not) be sent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField()
    customer_id = models.UUIDField()
    kind = models.CharField(max_length=32, choices=[(k.value, k.value) for k in Kind])
    subject = models.CharField(max_length=200)
    body = models.TextField()
    # NULL, not "": "no address (yet)" is a state the retry task's partial index and the admin filter on.
    to_email = models.CharField(max_length=254, null=True, blank=True)  # noqa: DJ001
    sent_at = models.DateTimeField(null=True, blank=True)
    # Failed sends stay unsent and are retried by the periodic task; these say why, for the admin.
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["order_id", "kind"], name="notifications_one_per_order_kind"),
        ]
        indexes = [
            models.Index(fields=["customer_id", "-created_at"], name="notifications_by_customer"),
            # The retry task's scan: addressed but not sent.
            models.Index(
                fields=["created_at"],
                name="notifications_unsent",
                condition=models.Q(sent_at__isnull=True, to_email__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.order_id}"

    @property
    def kind_enum(self) -> Kind:
        return Kind(self.kind)


class OutboxEvent(OutboxEventBase):
    class Meta(OutboxEventBase.Meta):
        indexes = outbox_indexes("notifications")


class InboxEvent(InboxEventBase):
    class Meta(InboxEventBase.Meta):
        constraints = inbox_constraints("notifications")


class DeadLetter(DeadLetterBase):
    class Meta(DeadLetterBase.Meta):
        constraints = dead_letter_constraints("notifications")


class ParkedKey(ParkedKeyBase):
    class Meta(ParkedKeyBase.Meta):
        constraints = parked_key_constraints("notifications")

from __future__ import annotations

from django.db import models

from contexts.inventory.domain import StockItem as StockAggregate
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


class StockItem(models.Model):
    sku = models.CharField(primary_key=True, max_length=64)
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=models.Q(reserved__gte=0), name="inventory_reserved_non_negative"),
            models.CheckConstraint(
                condition=models.Q(on_hand__gte=models.F("reserved")), name="inventory_available_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku}: {self.on_hand} on hand, {self.reserved} reserved"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def to_domain(self) -> StockAggregate:
        return StockAggregate(sku=self.sku, on_hand=self.on_hand, reserved=self.reserved)

    def update_from_domain(self, item: StockAggregate) -> None:
        self.on_hand, self.reserved = item.on_hand, item.reserved


class Reservation(models.Model):
    class Status(models.TextChoices):
        RESERVED = "RESERVED"
        REJECTED = "REJECTED"
        COMMITTED = "COMMITTED"
        RELEASED = "RELEASED"

    order_id = models.UUIDField(primary_key=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    lines = models.JSONField(help_text='[{"sku": ..., "quantity": ...}]')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.status}"


class StockAdjustment(models.Model):
    """Audit trail of staff adjustments."""

    sku = models.CharField(max_length=64, db_index=True)
    delta = models.IntegerField()
    reason = models.CharField(max_length=200)
    on_hand_after = models.IntegerField()
    adjusted_by = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.sku} {self.delta:+d} ({self.reason})"


class OutboxEvent(OutboxEventBase):
    class Meta(OutboxEventBase.Meta):
        indexes = outbox_indexes("inventory")


class InboxEvent(InboxEventBase):
    class Meta(InboxEventBase.Meta):
        constraints = inbox_constraints("inventory")


class DeadLetter(DeadLetterBase):
    class Meta(DeadLetterBase.Meta):
        constraints = dead_letter_constraints("inventory")


class ParkedKey(ParkedKeyBase):
    class Meta(ParkedKeyBase.Meta):
        constraints = parked_key_constraints("inventory")

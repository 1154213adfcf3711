from __future__ import annotations

import uuid

from django.db import models

from contexts.payments.domain import DeclineReason, PaymentStatus
from contexts.payments.domain import Payment as PaymentAggregate
from orderflow.domain import Money
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


def _choices(enum) -> list[tuple[str, str]]:
    return [(m.value, m.value) for m in enum]


class Payment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Unique: exactly one payment per order, however often OrderPlaced is delivered.
    order_id = models.UUIDField(unique=True)
    # Replicated from OrderPlaced so the API can tell owners apart without asking orders.
    customer_id = models.UUIDField(db_index=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=_choices(PaymentStatus))
    decline_reason = models.CharField(max_length=32, choices=_choices(DeclineReason), blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payments_amount_positive"),
            # A reason exactly when declined: the API and admin never show a stale one.
            models.CheckConstraint(
                condition=models.Q(status=PaymentStatus.DECLINED.value, decline_reason__gt="")
                | (~models.Q(status=PaymentStatus.DECLINED.value) & models.Q(decline_reason="")),
                name="payments_decline_reason_iff_declined",
            ),
        ]

    def __str__(self) -> str:
        return f"payment {self.id} for order {self.order_id} {self.status}"

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    def to_domain(self) -> PaymentAggregate:
        return PaymentAggregate(
            id=self.id,
            order_id=self.order_id,
            amount=self.money,
            status=PaymentStatus(self.status),
            decline_reason=DeclineReason(self.decline_reason) if self.decline_reason else None,
        )

    def update_from_domain(self, payment: PaymentAggregate) -> None:
        self.id, self.order_id = payment.id, payment.order_id
        self.amount, self.currency = payment.amount.amount, payment.amount.currency
        self.status = payment.status
        self.decline_reason = payment.decline_reason or ""


class OutboxEvent(OutboxEventBase):
    class Meta(OutboxEventBase.Meta):
        indexes = outbox_indexes("payments")


class InboxEvent(InboxEventBase):
    class Meta(InboxEventBase.Meta):
        constraints = inbox_constraints("payments")


class DeadLetter(DeadLetterBase):
    class Meta(DeadLetterBase.Meta):
        constraints = dead_letter_constraints("payments")


class ParkedKey(ParkedKeyBase):
    class Meta(ParkedKeyBase.Meta):
        constraints = parked_key_constraints("payments")

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models

from contexts.orders.domain import Order as OrderAggregate
from contexts.orders.domain import OrderLine as DomainLine
from contexts.orders.domain import OrderStatus, PaymentStatus, PriceQuote, StockStatus
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


class ProductPrice(models.Model):
    """Orders' replica of the catalog's prices (from Product* events): the only price source."""

    sku = models.CharField(primary_key=True, max_length=64)
    price_amount = models.DecimalField(max_digits=12, decimal_places=2)
    price_currency = models.CharField(max_length=3)
    active = models.BooleanField(default=True)
    # Time of the newest catalog event applied: an older (stale, e.g. replayed) one is ignored.
    source_time = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.sku} {self.price_amount} {self.price_currency}"

    def to_quote(self) -> PriceQuote:
        return PriceQuote(self.sku, Money(self.price_amount, self.price_currency), self.active)


class CustomerStatus(models.Model):
    """Orders' replica of customer accounts (from Customer* events)."""

    customer_id = models.UUIDField(primary_key=True)
    # Kept so staff can find orders by the customer's email in the admin.
    email = models.EmailField(blank=True, default="", db_index=True)
    active = models.BooleanField(default=True)
    # Time of the newest customer event applied: an older (stale, e.g. replayed) one is ignored.
    source_time = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.email or self.customer_id} {'active' if self.active else 'deactivated'}"


class Order(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.UUIDField(db_index=True)
    status = models.CharField(max_length=16, choices=_choices(OrderStatus), default=OrderStatus.PENDING)
    stock_status = models.CharField(max_length=16, choices=_choices(StockStatus), default=StockStatus.PENDING)
    payment_status = models.CharField(max_length=16, choices=_choices(PaymentStatus), default=PaymentStatus.PENDING)
    cancellation_reason = models.CharField(max_length=200, blank=True, default="")
    total_amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="orders_status_created")]

    def __str__(self) -> str:
        return f"order {self.id} {self.status}"

    @property
    def total(self) -> Money:
        return Money(self.total_amount, self.currency)

    def to_domain(self) -> OrderAggregate:
        # `line_data` is there when the row was loaded with its lines (services._locked: one query
        # instead of two on the saga's hot path); otherwise the lines are queried.
        if hasattr(self, "line_data"):
            lines = tuple(
                DomainLine(sku, quantity, Money(Decimal(amount), self.currency))
                for sku, quantity, amount in self.line_data
            )
        else:
            lines = tuple(
                DomainLine(line.sku, line.quantity, Money(line.unit_price_amount, self.currency))
                for line in self.lines.all()
            )
        return OrderAggregate(
            id=self.id,
            customer_id=self.customer_id,
            lines=lines,
            total=self.total,
            status=OrderStatus(self.status),
            stock_status=StockStatus(self.stock_status),
            payment_status=PaymentStatus(self.payment_status),
            cancellation_reason=self.cancellation_reason,
        )

    def update_from_domain(self, order: OrderAggregate) -> None:
        self.status, self.stock_status, self.payment_status = order.status, order.stock_status, order.payment_status
        self.cancellation_reason = order.cancellation_reason


class OrderView(models.Model):
    """The order read model (CQRS): one denormalized row per order, projected from the order's
    domain events in the same transaction as the change, and all the order endpoints read."""

    id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField()
    status = models.CharField(max_length=16)
    stock_status = models.CharField(max_length=16)
    payment_status = models.CharField(max_length=16)
    cancellation_reason = models.CharField(max_length=200, blank=True, default="")
    lines = models.JSONField(help_text='[{"sku", "quantity", "unit_price": {"amount", "currency"}}]')
    total = models.JSONField(help_text='{"amount", "currency"}')
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer_id", "-created_at"], name="orders_view_customer"),
            models.Index(fields=["status", "-created_at"], name="orders_view_status"),
        ]

    def __str__(self) -> str:
        return f"order {self.id} {self.status}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    position = models.PositiveSmallIntegerField()
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    unit_price_amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["order", "position"]
        constraints = [models.UniqueConstraint(fields=["order", "position"], name="orders_line_position")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class TimelineEntry(models.Model):
    """Every event of an order's saga, from every context, as orders saw it."""

    order_id = models.UUIDField(db_index=True)
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=200)
    source = models.CharField(max_length=100)
    occurred_at = models.DateTimeField()
    data = models.JSONField(default=dict)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order_id", "occurred_at", "id"]
        constraints = [models.UniqueConstraint(fields=["order_id", "event_id", "type"], name="orders_timeline_once")]

    def __str__(self) -> str:
        return f"{self.order_id} {self.type}"


class IdempotencyKey(models.Model):
    """`Idempotency-Key` of POST /api/orders/: the same key and body return the same order."""

    customer_id = models.UUIDField()
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    order = models.ForeignKey(Order, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer_id", "key"], name="orders_idempotency_once")]

    def __str__(self) -> str:
        return f"{self.key} -> {self.order_id}"


class OutboxEvent(OutboxEventBase):
    class Meta(OutboxEventBase.Meta):
        indexes = outbox_indexes("orders")


class InboxEvent(InboxEventBase):
    class Meta(InboxEventBase.Meta):
        constraints = inbox_constraints("orders")


class DeadLetter(DeadLetterBase):
    class Meta(DeadLetterBase.Meta):
        constraints = dead_letter_constraints("orders")


class ParkedKey(ParkedKeyBase):
    class Meta(ParkedKeyBase.Meta):
        constraints = parked_key_constraints("orders")

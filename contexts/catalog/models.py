from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models

from contexts.catalog.domain import Product as ProductAggregate
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

SEARCH_CONFIG = "english"


class Product(models.Model):
    sku = models.CharField(primary_key=True, max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    price_amount = models.DecimalField(max_digits=12, decimal_places=2)
    price_currency = models.CharField(max_length=3, default="USD")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        indexes = [
            # Full-text search over name and description (PostgreSQL, no extra server).
            GinIndex(SearchVector("name", "description", config=SEARCH_CONFIG), name="catalog_product_search"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"

    @property
    def price(self) -> Money:
        return Money(self.price_amount, self.price_currency)

    def to_domain(self) -> ProductAggregate:
        return ProductAggregate(
            sku=self.sku, name=self.name, description=self.description, price=self.price, active=self.active
        )

    def update_from_domain(self, product: ProductAggregate) -> None:
        self.name, self.description, self.active = product.name, product.description, product.active
        self.price_amount, self.price_currency = product.price.amount, product.price.currency


class OutboxEvent(OutboxEventBase):
    class Meta(OutboxEventBase.Meta):
        indexes = outbox_indexes("catalog")


class InboxEvent(InboxEventBase):
    class Meta(InboxEventBase.Meta):
        constraints = inbox_constraints("catalog")


class DeadLetter(DeadLetterBase):
    class Meta(DeadLetterBase.Meta):
        constraints = dead_letter_constraints("catalog")


class ParkedKey(ParkedKeyBase):
    class Meta(ParkedKeyBase.Meta):
        constraints = parked_key_constraints("catalog")

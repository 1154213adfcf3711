"""Products of the catalog: what may be sold and at what price. Pure Python."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orderflow.domain import Aggregate, DomainError, DomainEvent, Money

_SKU = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,63}$")


def check_sku(sku: str) -> str:
    if not _SKU.match(sku):
        raise DomainError(f"sku {sku!r} must be 1-64 upper-case letters, digits, '-' or '_'", code="invalid_sku")
    return sku


@dataclass(frozen=True)
class Added(DomainEvent):
    sku: str
    name: str
    description: str
    price: Money


@dataclass(frozen=True)
class PriceChanged(DomainEvent):
    sku: str
    price: Money
    previous_price: Money


@dataclass(frozen=True)
class Discontinued(DomainEvent):
    sku: str


@dataclass
class Product(Aggregate):
    sku: str
    name: str
    description: str
    price: Money
    active: bool = True
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @staticmethod
    def _check_price(price: Money) -> None:
        if price.amount <= 0:
            raise DomainError("price must be positive", code="invalid_price")

    @classmethod
    def add(cls, *, sku: str, name: str, description: str, price: Money) -> Product:
        cls._check_price(price)
        if not name.strip():
            raise DomainError("name must not be empty", code="invalid_name")
        product = cls(sku=check_sku(sku), name=name.strip(), description=description, price=price)
        product.record(Added(product.sku, product.name, product.description, product.price))
        return product

    def change_price(self, price: Money) -> None:
        self._check_price(price)
        if not self.active:
            raise DomainError(f"{self.sku} is discontinued", code="discontinued")
        if price.currency != self.price.currency:
            raise DomainError("a product's currency cannot change", code="currency_change")
        if price != self.price:
            self.record(PriceChanged(self.sku, price, self.price))
            self.price = price

    def discontinue(self) -> None:
        if self.active:
            self.active = False
            self.record(Discontinued(self.sku))

    def describe(self, *, name: str | None = None, description: str | None = None) -> None:
        if name is not None:
            if not name.strip():
                raise DomainError("name must not be empty", code="invalid_name")
            self.name = name.strip()
        if description is not None:
            self.description = description

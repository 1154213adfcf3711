"""Stock per sku and all-or-nothing reservations per order. Pure Python."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from orderflow.domain import DomainError


class InsufficientStock(DomainError):
    code = "insufficient_stock"


@dataclass
class StockItem:
    sku: str
    on_hand: int = 0
    reserved: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def adjust(self, delta: int) -> None:
        """Staff count corrections and deliveries. Stock can never go below what is reserved:
        units promised to orders cannot be adjusted away (so `available` never goes negative)."""
        if self.on_hand + delta < self.reserved:
            raise InsufficientStock(
                f"{self.sku}: adjusting by {delta} would leave {self.on_hand + delta} on hand "
                f"with {self.reserved} reserved"
            )
        self.on_hand += delta


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Shortage:
    sku: str
    requested: int
    available: int


@dataclass(frozen=True, slots=True)
class ReservationOutcome:
    order_id: uuid.UUID
    lines: tuple[Line, ...]
    shortages: tuple[Shortage, ...]

    @property
    def reserved(self) -> bool:
        return not self.shortages


def reserve(order_id: uuid.UUID, lines: list[Line], stock: dict[str, StockItem]) -> ReservationOutcome:
    """Reserve every line or none. `stock` holds the (locked) items of the order's skus; a sku
    missing from it is unknown to inventory and counts as nothing available."""
    wanted: dict[str, int] = {}
    for line in lines:  # the same sku on two lines is one demand
        wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
    shortages = tuple(
        Shortage(sku, quantity, stock[sku].available if sku in stock else 0)
        for sku, quantity in sorted(wanted.items())
        if sku not in stock or stock[sku].available < quantity
    )
    merged = tuple(Line(sku, quantity) for sku, quantity in sorted(wanted.items()))
    if not shortages:
        for line in merged:
            stock[line.sku].reserved += line.quantity
    return ReservationOutcome(order_id, merged, shortages)


def commit(lines: list[Line], stock: dict[str, StockItem]) -> None:
    """A confirmed order's reserved units leave the warehouse: on hand and reserved both drop."""
    for line in lines:
        item = stock[line.sku]
        item.reserved -= line.quantity
        item.on_hand -= line.quantity


def release(lines: list[Line], stock: dict[str, StockItem], *, committed: bool) -> None:
    """A cancelled order's units become available again: a reservation is released; committed
    units (already taken off the shelf) are put back on hand (restock)."""
    for line in lines:
        item = stock[line.sku]
        if committed:
            item.on_hand += line.quantity
        else:
            item.reserved -= line.quantity

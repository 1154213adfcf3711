"""The Order aggregate: placement rules and the saga state kept on the order. Pure Python.

Orders is the saga's process manager: each reply from inventory (and, later, payments) moves
the order's stock/payment status, and the order's own status follows from both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from orderflow.domain import Aggregate, DomainError, DomainEvent, Money


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"


class StockStatus(StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    AUTHORIZED = "AUTHORIZED"
    DECLINED = "DECLINED"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"


class InvalidOrder(DomainError):
    """The order as requested cannot be placed (a client error, with the offending line)."""

    code = "invalid_order"

    def __init__(self, message: str, *, field: str = "lines", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


@dataclass(frozen=True)
class PriceQuote:
    """What orders knows of a sku from its catalog replica."""

    sku: str
    price: Money
    active: bool


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Money

    @property
    def subtotal(self) -> Money:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Placed(DomainEvent):
    order_id: uuid.UUID
    customer_id: uuid.UUID
    lines: tuple[OrderLine, ...]
    total: Money
    card_token: str


@dataclass(frozen=True)
class ReplyIgnored(DomainEvent):
    """A late or duplicate saga reply: nothing changes, but the timeline shows it."""

    order_id: uuid.UUID
    reason: str


@dataclass
class Order(Aggregate):
    id: uuid.UUID
    customer_id: uuid.UUID
    lines: tuple[OrderLine, ...]
    total: Money
    status: OrderStatus = OrderStatus.PENDING
    stock_status: StockStatus = StockStatus.PENDING
    payment_status: PaymentStatus = PaymentStatus.PENDING
    cancellation_reason: str = ""
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def place(
        cls,
        *,
        customer_id: uuid.UUID,
        lines: list[tuple[str, int]],
        quotes: dict[str, PriceQuote],
        card_token: str,
        order_id: uuid.UUID | None = None,
    ) -> Order:
        """Prices come from `quotes` (orders' own catalog replica), never from the client."""
        if not lines:
            raise InvalidOrder("an order needs at least one line", code="empty_order")
        priced: list[OrderLine] = []
        for index, (sku, quantity) in enumerate(lines):
            where = f"lines.{index}"
            if quantity < 1:
                raise InvalidOrder("quantity must be at least 1", field=f"{where}.quantity", code="invalid_quantity")
            quote = quotes.get(sku)
            if quote is None:
                raise InvalidOrder(f"unknown sku {sku}", field=f"{where}.sku", code="unknown_sku")
            if not quote.active:
                raise InvalidOrder(f"sku {sku} is discontinued", field=f"{where}.sku", code="inactive_sku")
            priced.append(OrderLine(sku, quantity, quote.price))
        currencies = {line.unit_price.currency for line in priced}
        if len(currencies) > 1:
            raise InvalidOrder(
                f"an order cannot mix currencies ({', '.join(sorted(currencies))})", code="mixed_currencies"
            )
        total = priced[0].subtotal
        for line in priced[1:]:
            total = total + line.subtotal
        order = cls(id=order_id or uuid.uuid4(), customer_id=customer_id, lines=tuple(priced), total=total)
        order.record(Placed(order.id, customer_id, order.lines, total, card_token))
        return order

    # -- saga replies --------------------------------------------------------------------------
    def stock_reserved(self) -> None:
        if self.stock_status is not StockStatus.PENDING:
            self.record(ReplyIgnored(self.id, f"stock reserved while stock is {self.stock_status}"))
            return
        self.stock_status = StockStatus.RESERVED

    def stock_rejected(self) -> None:
        if self.stock_status is not StockStatus.PENDING:
            self.record(ReplyIgnored(self.id, f"stock rejected while stock is {self.stock_status}"))
            return
        self.stock_status = StockStatus.REJECTED

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
class StatusChanged(DomainEvent):
    """One of the order's three statuses moved (feeds the read model)."""

    order_id: uuid.UUID
    field: str  # "status" | "stock_status" | "payment_status"
    value: str


@dataclass(frozen=True)
class Confirmed(DomainEvent):
    order_id: uuid.UUID


@dataclass(frozen=True)
class Cancelled(DomainEvent):
    order_id: uuid.UUID
    reason: str


@dataclass(frozen=True)
class Shipped(DomainEvent):
    order_id: uuid.UUID


@dataclass(frozen=True)
class Delivered(DomainEvent):
    order_id: uuid.UUID


@dataclass(frozen=True)
class ReplyNoted(DomainEvent):
    """A late or duplicate saga reply: the timeline shows it with this note."""

    order_id: uuid.UUID
    note: str


class OrderStateError(DomainError):
    """The command is not allowed in the order's current status (HTTP 409)."""

    code = "invalid_order_state"


# Saga replies: reply → (which status it moves, from which values, to what). A reply that does
# not apply (duplicate, contradicting, or for a finished order) changes nothing and is noted.
S, P = StockStatus, PaymentStatus
REPLIES: dict[str, tuple[str, frozenset, StrEnum]] = {
    "stock_reserved": ("stock_status", frozenset({S.PENDING}), S.RESERVED),
    "stock_rejected": ("stock_status", frozenset({S.PENDING}), S.REJECTED),
    "stock_committed": ("stock_status", frozenset({S.RESERVED}), S.COMMITTED),
    "stock_released": ("stock_status", frozenset({S.RESERVED, S.COMMITTED}), S.RELEASED),
    "payment_authorized": ("payment_status", frozenset({P.PENDING}), P.AUTHORIZED),
    "payment_declined": ("payment_status", frozenset({P.PENDING}), P.DECLINED),
    "payment_captured": ("payment_status", frozenset({P.AUTHORIZED}), P.CAPTURED),
    "payment_voided": ("payment_status", frozenset({P.AUTHORIZED}), P.VOIDED),
    "payment_refunded": ("payment_status", frozenset({P.CAPTURED}), P.REFUNDED),
}
# The first answers of the two participants; after the order left PENDING they are "late".
_FIRST_ANSWERS = {"stock_reserved", "stock_rejected", "payment_authorized", "payment_declined"}
CUSTOMER_CANCELLABLE = frozenset({OrderStatus.PENDING, OrderStatus.CONFIRMED})


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
    def reply(self, kind: str) -> None:
        """Apply a participant's reply, then decide the saga if both have answered."""
        attribute, allowed, target = REPLIES[kind]
        current = getattr(self, attribute)
        if current not in allowed:
            self.record(ReplyNoted(self.id, f"{kind} ignored: {attribute} is already {current}"))
            return
        setattr(self, attribute, target)
        self.record(StatusChanged(self.id, attribute, target.value))
        if kind in _FIRST_ANSWERS and self.status is not OrderStatus.PENDING:
            # Still applied (compensations follow from the order's final state), but late.
            self.record(ReplyNoted(self.id, f"late reply: the order is already {self.status}"))
        self._decide()

    def _decide(self) -> None:
        if self.status is not OrderStatus.PENDING:
            return
        if self.stock_status is StockStatus.REJECTED:
            self._cancel("out_of_stock")
        elif self.payment_status is PaymentStatus.DECLINED:
            self._cancel("payment_declined")
        elif self.stock_status is StockStatus.RESERVED and self.payment_status is PaymentStatus.AUTHORIZED:
            self._set_status(OrderStatus.CONFIRMED)
            self.record(Confirmed(self.id))

    # -- commands ------------------------------------------------------------------------------
    def cancel(self, reason: str) -> None:
        """Customer or staff cancellation: allowed while PENDING or CONFIRMED."""
        if self.status not in CUSTOMER_CANCELLABLE:
            raise OrderStateError(f"a {self.status} order cannot be cancelled")
        self._cancel(reason)

    def expire(self) -> bool:
        """The deadline passed: a still-PENDING order is cancelled with reason `timeout`."""
        if self.status is not OrderStatus.PENDING:
            return False
        self._cancel("timeout")
        return True

    def ship(self) -> None:
        if self.status is not OrderStatus.CONFIRMED:
            raise OrderStateError(f"only a CONFIRMED order can be shipped, this one is {self.status}")
        self._set_status(OrderStatus.SHIPPED)
        self.record(Shipped(self.id))

    def deliver(self) -> None:
        if self.status is not OrderStatus.SHIPPED:
            raise OrderStateError(f"only a SHIPPED order can be delivered, this one is {self.status}")
        self._set_status(OrderStatus.DELIVERED)
        self.record(Delivered(self.id))

    def _cancel(self, reason: str) -> None:
        self.cancellation_reason = reason
        self._set_status(OrderStatus.CANCELLED)
        self.record(Cancelled(self.id, reason))

    def _set_status(self, status: OrderStatus) -> None:
        self.status = status
        self.record(StatusChanged(self.id, "status", status.value))

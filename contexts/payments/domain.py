"""A payment per order: authorize, then capture, void or refund behind a gateway port. Pure Python.

Every command checks its rule BEFORE it calls the gateway, so an illegal or repeated transition
never reaches the card network.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from orderflow.domain import Aggregate, DomainError, DomainEvent, Money


class PaymentStatus(StrEnum):
    AUTHORIZED = "AUTHORIZED"
    DECLINED = "DECLINED"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"


class DeclineReason(StrEnum):
    """The reasons the PaymentDeclined contract allows."""

    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    OVER_LIMIT = "over_limit"


class IllegalTransition(DomainError):
    code = "illegal_payment_transition"


@dataclass(frozen=True)
class AuthorizationResult:
    approved: bool
    decline_reason: DeclineReason | None = None


class PaymentGateway(Protocol):
    """The port to a card processor. `reference` is our payment id: adapters pass it on as the
    processor's idempotency key, so a retried call after a crash is not charged twice."""

    def authorize(self, *, card_token: str, amount: Money, reference: str) -> AuthorizationResult: ...

    def capture(self, *, amount: Money, reference: str) -> None: ...

    def void(self, *, reference: str) -> None: ...

    def refund(self, *, amount: Money, reference: str) -> None: ...


@dataclass(frozen=True)
class PaymentEvent(DomainEvent):
    payment_id: uuid.UUID
    order_id: uuid.UUID
    amount: Money


@dataclass(frozen=True)
class Authorized(PaymentEvent):
    pass


@dataclass(frozen=True)
class Declined(PaymentEvent):
    reason: DeclineReason


@dataclass(frozen=True)
class Captured(PaymentEvent):
    pass


@dataclass(frozen=True)
class Voided(PaymentEvent):
    pass


@dataclass(frozen=True)
class Refunded(PaymentEvent):
    pass


# The payment of an order has an id derived from the order's, and it is the reference the gateway
# sees: an authorization attempted again for the same order (a redelivered event, a consumer batch
# rolled back after the gateway answered and applied again one by one) reaches a processor with
# the same idempotency reference, so it can never become a second hold on the card.
_PAYMENT_IDS = uuid.UUID("6f1d7c1e-3a52-4f0b-9d0c-0a7d2f0e5b11")


def payment_id_for(order_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_PAYMENT_IDS, str(order_id))


@dataclass
class Payment(Aggregate):
    id: uuid.UUID
    order_id: uuid.UUID
    amount: Money
    status: PaymentStatus
    decline_reason: DeclineReason | None = None
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    # -- creation ------------------------------------------------------------------------------
    @classmethod
    def authorize(
        cls,
        *,
        order_id: uuid.UUID,
        amount: Money,
        card_token: str,
        gateway: PaymentGateway,
        payment_id: uuid.UUID | None = None,
    ) -> Payment:
        """Ask the gateway to hold `amount`: the payment starts AUTHORIZED, or DECLINED."""
        if amount.amount <= 0:
            raise DomainError(f"cannot authorize a non-positive amount {amount.amount}", code="invalid_amount")
        payment_id = payment_id or payment_id_for(order_id)
        result = gateway.authorize(card_token=card_token, amount=amount, reference=str(payment_id))
        if not result.approved:
            return cls.decline(
                order_id=order_id,
                amount=amount,
                reason=result.decline_reason or DeclineReason.CARD_DECLINED,
                payment_id=payment_id,
            )
        payment = cls(id=payment_id, order_id=order_id, amount=amount, status=PaymentStatus.AUTHORIZED)
        payment.record(Authorized(payment.id, order_id, amount))
        return payment

    @classmethod
    def decline(
        cls, *, order_id: uuid.UUID, amount: Money, reason: DeclineReason, payment_id: uuid.UUID | None = None
    ) -> Payment:
        """A refused payment is still recorded: one payment per order, whatever its outcome."""
        payment = cls(
            id=payment_id or payment_id_for(order_id),
            order_id=order_id,
            amount=amount,
            status=PaymentStatus.DECLINED,
            decline_reason=reason,
        )
        payment.record(Declined(payment.id, order_id, amount, reason))
        return payment

    # -- transitions ---------------------------------------------------------------------------
    def capture(self, gateway: PaymentGateway) -> None:
        self._require(PaymentStatus.AUTHORIZED, "capture")
        gateway.capture(amount=self.amount, reference=str(self.id))
        self.status = PaymentStatus.CAPTURED
        self.record(Captured(self.id, self.order_id, self.amount))

    def void(self, gateway: PaymentGateway) -> None:
        self._require(PaymentStatus.AUTHORIZED, "void")
        gateway.void(reference=str(self.id))
        self.status = PaymentStatus.VOIDED
        self.record(Voided(self.id, self.order_id, self.amount))

    def refund(self, gateway: PaymentGateway) -> None:
        """Pays the whole capture back; partial refunds are not part of the saga."""
        self._require(PaymentStatus.CAPTURED, "refund")
        gateway.refund(amount=self.amount, reference=str(self.id))
        self.status = PaymentStatus.REFUNDED
        self.record(Refunded(self.id, self.order_id, self.amount))

    def compensate(self, gateway: PaymentGateway) -> None:
        """The order was cancelled: release the hold or pay the capture back. A payment that holds
        nothing (declined, voided, refunded) is left as it is, so a repeated cancel is harmless."""
        if self.status == PaymentStatus.AUTHORIZED:
            self.void(gateway)
        elif self.status == PaymentStatus.CAPTURED:
            self.refund(gateway)

    def _require(self, status: PaymentStatus, action: str) -> None:
        if self.status != status:
            raise IllegalTransition(f"cannot {action} payment {self.id}: it is {self.status}, not {status}")

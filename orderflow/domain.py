"""Shared kernel for the pure domain layers: base types every context's domain builds on.

No Django here (import-linter enforces it): aggregates are plain classes that check their rules
and record what happened in `self.events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


class DomainError(Exception):
    """A business rule refused a command. Entry points turn it into a 409 or a rejection event."""

    code = "rule_violated"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


@dataclass(frozen=True)
class DomainEvent:
    """Base for the facts an aggregate records; services map them to integration events."""


class Aggregate:
    """Collects domain events raised by command methods until the service takes them."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def record(self, event: DomainEvent) -> None:
        self.events.append(event)

    def pull_events(self) -> list[DomainEvent]:
        events, self.events = self.events, []
        return events


CENT = Decimal("0.01")


@dataclass(frozen=True, order=True)
class Money:
    """An amount in one currency, kept to the cent."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not (len(self.currency) == 3 and self.currency.isalpha() and self.currency.isupper()):
            raise DomainError(f"currency must be a 3-letter ISO code, got {self.currency!r}", code="invalid_currency")
        try:
            quantized = Decimal(self.amount).quantize(CENT, rounding=ROUND_HALF_UP)
        except (InvalidOperation, TypeError, ValueError):
            raise DomainError(f"invalid amount {self.amount!r}", code="invalid_amount") from None
        object.__setattr__(self, "amount", quantized)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        try:
            value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
        except InvalidOperation:
            raise DomainError(f"invalid amount {amount!r}", code="invalid_amount") from None
        return cls(value, currency)

    @classmethod
    def from_dict(cls, value: dict) -> Money:
        return cls.of(value["amount"], value["currency"])

    def to_dict(self) -> dict[str, str]:
        return {"amount": str(self.amount), "currency": self.currency}

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        return Money(self.amount * factor, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise DomainError(f"cannot mix {self.currency} and {other.currency}", code="mixed_currencies")

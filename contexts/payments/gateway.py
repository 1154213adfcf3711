"""Gateway adapters. `settings.PAYMENTS_GATEWAY` names the one in use, so a real processor's adapter
replaces the fake without touching services."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.utils.module_loading import import_string

from contexts.payments.domain import AuthorizationResult, DeclineReason, PaymentGateway
from orderflow.domain import Money

# Stripe-style test tokens; any other token is declined like an unknown card.
TOKEN_OUTCOMES: dict[str, DeclineReason | None] = {
    "tok_visa": None,
    "tok_declined": DeclineReason.CARD_DECLINED,
    "tok_insufficient_funds": DeclineReason.INSUFFICIENT_FUNDS,
}


class FakeGateway:
    """Deterministic processor for dev, tests and demos. Holds no state: capture, void and refund
    always succeed, so the saga's compensations can be exercised end to end."""

    def __init__(self, single_payment_limit: Decimal | str | None = None) -> None:
        limit = settings.PAYMENTS_SINGLE_PAYMENT_LIMIT if single_payment_limit is None else single_payment_limit
        self.single_payment_limit = Decimal(str(limit))

    def authorize(self, *, card_token: str, amount: Money, reference: str) -> AuthorizationResult:
        # The limit comes first: even a good card cannot pay more than one payment may hold.
        if amount.amount > self.single_payment_limit:
            return AuthorizationResult(approved=False, decline_reason=DeclineReason.OVER_LIMIT)
        reason = TOKEN_OUTCOMES.get(card_token, DeclineReason.CARD_DECLINED)
        return AuthorizationResult(approved=reason is None, decline_reason=reason)

    def capture(self, *, amount: Money, reference: str) -> None:
        return None

    def void(self, *, reference: str) -> None:
        return None

    def refund(self, *, amount: Money, reference: str) -> None:
        return None


def get_gateway() -> PaymentGateway:
    """A new instance of the configured adapter (cheap for the fake; real adapters may pool)."""
    return import_string(settings.PAYMENTS_GATEWAY)()

"""Events of the payments context (stream `payments.payment`, key = payment id; one per order)."""

from contracts.base import MONEY, UUID, EventType, obj
from contracts.registry import registry

PAYMENT_REF = {"payment_id": UUID, "order_id": UUID, "amount": MONEY}


def _payment_event(name: str, description: str, extra: dict | None = None) -> EventType:
    return registry.register(
        EventType(
            context="payments",
            aggregate="payment",
            name=name,
            version=1,
            description=description,
            schema=obj({**PAYMENT_REF, **(extra or {})}),
        )
    )


PaymentAuthorized = _payment_event("PaymentAuthorized", "The order's total is authorized on the card.")
PaymentDeclined = _payment_event(
    "PaymentDeclined",
    "The card or the amount was declined; nothing is held.",
    {"reason": {"type": "string", "enum": ["card_declined", "insufficient_funds", "over_limit"]}},
)
PaymentCaptured = _payment_event("PaymentCaptured", "The authorization was captured: the money is taken.")
PaymentVoided = _payment_event("PaymentVoided", "The authorization was released without taking money.")
PaymentRefunded = _payment_event("PaymentRefunded", "A captured payment was paid back in full.")

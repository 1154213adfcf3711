"""What customers are told about their orders, and whether an email may go out yet. Pure Python."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """One notification per order and kind (the values are the NotificationSent contract's)."""

    ORDER_CONFIRMED = "order_confirmed"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_SHIPPED = "order_shipped"
    ORDER_DELIVERED = "order_delivered"


SUBJECTS: dict[Kind, str] = {
    Kind.ORDER_CONFIRMED: "Your order {ref} is confirmed",
    Kind.ORDER_CANCELLED: "Your order {ref} was cancelled",
    Kind.ORDER_SHIPPED: "Your order {ref} is on its way",
    Kind.ORDER_DELIVERED: "Your order {ref} was delivered",
}

# A deactivated customer still hears about money going back to them; everything else is news
# about an account they closed (or that was closed for them), so it is not sent.
SENT_TO_DEACTIVATED = frozenset({Kind.ORDER_CANCELLED})

REASONS = {
    "out_of_stock": "some items are out of stock",
    "unknown_sku": "some items are no longer sold",
    "payment_declined": "the payment was declined",
    "customer_request": "you asked us to cancel it",
    "timeout": "we could not complete it in time",
}


class Delivery(StrEnum):
    SEND = "send"  # address it to the contact's email now
    WAIT = "wait"  # the contact's email is not known yet: keep it until the contact arrives
    WITHHOLD = "withhold"  # the customer is deactivated and this kind is not for them


@dataclass(frozen=True)
class Recipient:
    """The replica of a customer's contact as far as notifications care."""

    email: str
    active: bool = True


def delivery_for(kind: Kind, recipient: Recipient | None) -> Delivery:
    if recipient is None or not recipient.email:
        return Delivery.WAIT
    if not recipient.active and kind not in SENT_TO_DEACTIVATED:
        return Delivery.WITHHOLD
    return Delivery.SEND


def order_reference(order_id: uuid.UUID) -> str:
    """The short, readable order number customers see (the first block of the id)."""
    return str(order_id).split("-")[0].upper()


def subject_for(kind: Kind, order_id: uuid.UUID) -> str:
    return SUBJECTS[kind].format(ref=order_reference(order_id))


def describe_reason(reason: str) -> str:
    """Saga reasons in words; anything else is the text staff typed, shown as it is."""
    return REASONS.get(reason, reason.strip())


def format_money(money: dict[str, str]) -> str:
    return f"{money['amount']} {money['currency']}"

"""Events payments reacts to: the order saga. Each handler runs inside the consumer's transaction
(with the inbox row), so it only maps the event to one service call."""

from __future__ import annotations

import uuid

import contracts.orders as orders
from contexts.payments import services
from orderflow.domain import Money
from orderflow.messaging.consumer import Event


def on_order_placed(event: Event) -> None:
    services.payment_authorize(
        order_id=uuid.UUID(event.data["order_id"]),
        customer_id=uuid.UUID(event.data["customer_id"]),
        amount=Money.from_dict(event.data["total"]),
        card_token=event.data["card_token"],
    )


def on_order_confirmed(event: Event) -> None:
    services.payment_capture(order_id=uuid.UUID(event.data["order_id"]))


def on_order_cancelled(event: Event) -> None:
    services.payment_cancel(order_id=uuid.UUID(event.data["order_id"]))


SUBSCRIPTIONS = {
    orders.OrderPlaced: on_order_placed,
    orders.OrderConfirmed: on_order_confirmed,
    orders.OrderCancelled: on_order_cancelled,
}

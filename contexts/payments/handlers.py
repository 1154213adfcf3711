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


def on_orders_placed(events: list[Event]) -> None:
    """A run of OrderPlaced in the consumer's batch: authorized together, in delivery order."""
    services.orders_authorize(
        orders=[
            services.OrderToAuthorize(
                order_id=uuid.UUID(event.data["order_id"]),
                customer_id=uuid.UUID(event.data["customer_id"]),
                amount=Money.from_dict(event.data["total"]),
                card_token=event.data["card_token"],
                trace=event.trace,
            )
            for event in events
        ]
    )


def on_order_confirmed(event: Event) -> None:
    services.payment_capture(order_id=uuid.UUID(event.data["order_id"]))


def on_order_cancelled(event: Event) -> None:
    services.payment_cancel(order_id=uuid.UUID(event.data["order_id"]))


def on_orders_confirmed(events: list[Event]) -> None:
    services.orders_capture(orders=[services.OrderRef(uuid.UUID(e.data["order_id"]), e.trace) for e in events])


def on_orders_cancelled(events: list[Event]) -> None:
    services.orders_cancel(orders=[services.OrderRef(uuid.UUID(e.data["order_id"]), e.trace) for e in events])


SUBSCRIPTIONS = {
    orders.OrderPlaced: on_order_placed,
    orders.OrderConfirmed: on_order_confirmed,
    orders.OrderCancelled: on_order_cancelled,
}

# Set-based versions of the handlers above, for runs of their event type in a consumer batch.
BATCH_SUBSCRIPTIONS = {
    orders.OrderPlaced: on_orders_placed,
    orders.OrderConfirmed: on_orders_confirmed,
    orders.OrderCancelled: on_orders_cancelled,
}

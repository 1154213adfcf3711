"""Events inventory reacts to. Each handler runs inside the consumer's transaction (with the
inbox row), so it only maps the event to one service call."""

from __future__ import annotations

import uuid

import contracts.catalog as catalog
import contracts.orders as orders
from contexts.inventory import services
from orderflow.messaging.consumer import Event


def on_product_added(event: Event) -> None:
    services.stock_item_ensure(sku=event.data["sku"])


def on_order_placed(event: Event) -> None:
    services.order_reserve(order_id=uuid.UUID(event.data["order_id"]), lines=event.data["lines"])


def on_orders_placed(events: list[Event]) -> None:
    """A run of OrderPlaced in the consumer's batch: reserved together, in delivery order."""
    services.orders_reserve(
        orders=[
            services.OrderToReserve(uuid.UUID(event.data["order_id"]), event.data["lines"], event.trace)
            for event in events
        ]
    )


def on_order_confirmed(event: Event) -> None:
    services.order_commit(order_id=uuid.UUID(event.data["order_id"]))


def on_order_cancelled(event: Event) -> None:
    services.order_release(order_id=uuid.UUID(event.data["order_id"]))


def on_orders_confirmed(events: list[Event]) -> None:
    services.orders_commit(orders=[services.OrderRef(uuid.UUID(e.data["order_id"]), e.trace) for e in events])


def on_orders_cancelled(events: list[Event]) -> None:
    services.orders_release(orders=[services.OrderRef(uuid.UUID(e.data["order_id"]), e.trace) for e in events])


SUBSCRIPTIONS = {
    catalog.ProductAdded: on_product_added,
    orders.OrderPlaced: on_order_placed,
    orders.OrderConfirmed: on_order_confirmed,
    orders.OrderCancelled: on_order_cancelled,
}

# Set-based versions of some handlers above, for runs of their event type in a consumer batch.
BATCH_SUBSCRIPTIONS = {
    orders.OrderPlaced: on_orders_placed,
    orders.OrderConfirmed: on_orders_confirmed,
    orders.OrderCancelled: on_orders_cancelled,
}

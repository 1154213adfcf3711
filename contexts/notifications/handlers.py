"""Events notifications reacts to: the customer-contact replica and the orders' milestones. Each
handler runs inside the consumer's transaction (with the inbox row), so it only maps the event to
one service call. Payment events carry nothing a customer is told separately (a cancellation
mail already says the money is returned), so they are not subscribed."""

from __future__ import annotations

import uuid

import contracts.customers as customers
import contracts.orders as orders
from contexts.notifications import services
from contexts.notifications.domain import Kind
from orderflow.messaging.consumer import BatchHandler, Event, Handler


def on_customer_registered(event: Event) -> None:
    services.contact_register(
        customer_id=uuid.UUID(event.data["customer_id"]), email=event.data["email"], name=event.data["name"]
    )


def on_customer_email_changed(event: Event) -> None:
    services.contact_change_email(customer_id=uuid.UUID(event.data["customer_id"]), email=event.data["email"])


def on_customer_deactivated(event: Event) -> None:
    services.contact_deactivate(customer_id=uuid.UUID(event.data["customer_id"]))


def _notify(kind: Kind) -> Handler:
    def handle(event: Event) -> None:
        services.notification_record(
            order_id=uuid.UUID(event.data["order_id"]),
            customer_id=uuid.UUID(event.data["customer_id"]),
            kind=kind,
            details=event.data,
        )

    handle.__name__ = f"on_{kind.value}"
    return handle


def _notify_all(kind: Kind) -> BatchHandler:
    """A run of one kind's order events in the consumer's batch: recorded together, in order."""

    def handle(events: list[Event]) -> None:
        services.notifications_record(
            kind=kind,
            orders=[
                services.OrderToNotify(
                    uuid.UUID(event.data["order_id"]), uuid.UUID(event.data["customer_id"]), event.data, event.trace
                )
                for event in events
            ],
        )

    handle.__name__ = f"on_{kind.value}_run"
    return handle


SUBSCRIPTIONS = {
    customers.CustomerRegistered: on_customer_registered,
    customers.CustomerEmailChanged: on_customer_email_changed,
    customers.CustomerDeactivated: on_customer_deactivated,
    orders.OrderConfirmed: _notify(Kind.ORDER_CONFIRMED),
    orders.OrderCancelled: _notify(Kind.ORDER_CANCELLED),
    orders.OrderShipped: _notify(Kind.ORDER_SHIPPED),
    orders.OrderDelivered: _notify(Kind.ORDER_DELIVERED),
}

# Set-based versions of the order handlers above, for runs of their event type in a consumer batch.
BATCH_SUBSCRIPTIONS = {
    orders.OrderConfirmed: _notify_all(Kind.ORDER_CONFIRMED),
    orders.OrderCancelled: _notify_all(Kind.ORDER_CANCELLED),
    orders.OrderShipped: _notify_all(Kind.ORDER_SHIPPED),
    orders.OrderDelivered: _notify_all(Kind.ORDER_DELIVERED),
}

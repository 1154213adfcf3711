"""Events orders reacts to: catalog and customer replicas, and the saga participants' replies."""

from __future__ import annotations

import uuid

import contracts.catalog as catalog
import contracts.customers as customers
import contracts.inventory as inventory
import contracts.notifications as notifications
import contracts.payments as payments
from contexts.orders import services
from orderflow.domain import Money
from orderflow.messaging.consumer import Event


def on_product_added(event: Event) -> None:
    services.product_price_upsert(
        sku=event.data["sku"],
        price=Money.from_dict(event.data["price"]),
        active=event.data["active"],
        occurred_at=event.time,
    )


def on_product_price_changed(event: Event) -> None:
    services.product_price_upsert(
        sku=event.data["sku"], price=Money.from_dict(event.data["price"]), occurred_at=event.time
    )


def on_product_discontinued(event: Event) -> None:
    services.product_discontinue(sku=event.data["sku"], occurred_at=event.time)


def on_customer_registered(event: Event) -> None:
    services.customer_status_set(
        customer_id=uuid.UUID(event.data["customer_id"]), email=event.data["email"], occurred_at=event.time
    )


def on_customer_email_changed(event: Event) -> None:
    services.customer_status_set(
        customer_id=uuid.UUID(event.data["customer_id"]), email=event.data["email"], occurred_at=event.time
    )


def on_customer_deactivated(event: Event) -> None:
    services.customer_status_set(customer_id=uuid.UUID(event.data["customer_id"]), active=False, occurred_at=event.time)


def _reply(kind: str):
    def handle(event: Event) -> None:
        services.saga_reply(
            order_id=uuid.UUID(event.data["order_id"]),
            reply=kind,
            event_id=event.id,
            type_=event.type.name,
            source=event.type.context,
            occurred_at=event.time,
            data=event.data,
        )

    handle.__name__ = f"on_{kind}"
    return handle


def on_notification_sent(event: Event) -> None:
    services.timeline_note(
        order_id=uuid.UUID(event.data["order_id"]),
        event_id=event.id,
        type_=event.type.name,
        source=event.type.context,
        occurred_at=event.time,
        data=event.data,
    )


_REPLIES = {
    inventory.StockReserved: "stock_reserved",
    inventory.StockReservationFailed: "stock_rejected",
    inventory.StockCommitted: "stock_committed",
    inventory.StockReleased: "stock_released",
    payments.PaymentAuthorized: "payment_authorized",
    payments.PaymentDeclined: "payment_declined",
    payments.PaymentCaptured: "payment_captured",
    payments.PaymentVoided: "payment_voided",
    payments.PaymentRefunded: "payment_refunded",
}
_REPLY_KINDS = {event_type.type: kind for event_type, kind in _REPLIES.items()}


def on_replies(events: list[Event]) -> None:
    """Every saga reply and NotificationSent, mixed, in delivery order: one batch of statements."""
    services.saga_replies(
        replies=[
            services.Reply(
                order_id=uuid.UUID(event.data["order_id"]),
                reply=_REPLY_KINDS.get(event.type.type),  # None: NotificationSent, a timeline note
                event_id=event.id,
                type_=event.type.name,
                source=event.type.context,
                occurred_at=event.time,
                data=event.data,
                trace=event.trace,
            )
            for event in events
        ]
    )


SUBSCRIPTIONS = {
    catalog.ProductAdded: on_product_added,
    catalog.ProductPriceChanged: on_product_price_changed,
    catalog.ProductDiscontinued: on_product_discontinued,
    customers.CustomerRegistered: on_customer_registered,
    customers.CustomerEmailChanged: on_customer_email_changed,
    customers.CustomerDeactivated: on_customer_deactivated,
    **{event_type: _reply(kind) for event_type, kind in _REPLIES.items()},
    notifications.NotificationSent: on_notification_sent,
}

# The set-based version for the consumer's batches: one function for all of these types, so a
# batch's consecutive replies of any of them (interleaved as they come back) go to it together.
BATCH_SUBSCRIPTIONS = {event_type: on_replies for event_type in [*_REPLIES, notifications.NotificationSent]}

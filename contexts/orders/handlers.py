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


SUBSCRIPTIONS = {
    catalog.ProductAdded: on_product_added,
    catalog.ProductPriceChanged: on_product_price_changed,
    catalog.ProductDiscontinued: on_product_discontinued,
    customers.CustomerRegistered: on_customer_registered,
    customers.CustomerEmailChanged: on_customer_email_changed,
    customers.CustomerDeactivated: on_customer_deactivated,
    inventory.StockReserved: _reply("stock_reserved"),
    inventory.StockReservationFailed: _reply("stock_rejected"),
    inventory.StockCommitted: _reply("stock_committed"),
    inventory.StockReleased: _reply("stock_released"),
    payments.PaymentAuthorized: _reply("payment_authorized"),
    payments.PaymentDeclined: _reply("payment_declined"),
    payments.PaymentCaptured: _reply("payment_captured"),
    payments.PaymentVoided: _reply("payment_voided"),
    payments.PaymentRefunded: _reply("payment_refunded"),
    notifications.NotificationSent: on_notification_sent,
}

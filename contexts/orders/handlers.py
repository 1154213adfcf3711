"""Events orders reacts to: catalog and customer replicas, and the saga's replies."""

from __future__ import annotations

import uuid

import contracts.catalog as catalog
import contracts.customers as customers
import contracts.inventory as inventory
from contexts.orders import services
from orderflow.domain import Money
from orderflow.messaging.consumer import Event


def on_product_added(event: Event) -> None:
    services.product_price_upsert(
        sku=event.data["sku"], price=Money.from_dict(event.data["price"]), active=event.data["active"]
    )


def on_product_price_changed(event: Event) -> None:
    services.product_price_upsert(sku=event.data["sku"], price=Money.from_dict(event.data["price"]))


def on_product_discontinued(event: Event) -> None:
    services.product_discontinue(sku=event.data["sku"])


def on_customer_registered(event: Event) -> None:
    services.customer_status_set(customer_id=uuid.UUID(event.data["customer_id"]), active=True)


def _stock_reply(reserved: bool):
    def handle(event: Event) -> None:
        services.stock_reply(
            order_id=uuid.UUID(event.data["order_id"]),
            reserved=reserved,
            event_id=event.id,
            type_=event.type.name,
            source=event.type.context,
            occurred_at=event.time,
            data=event.data,
        )

    return handle


SUBSCRIPTIONS = {
    catalog.ProductAdded: on_product_added,
    catalog.ProductPriceChanged: on_product_price_changed,
    catalog.ProductDiscontinued: on_product_discontinued,
    customers.CustomerRegistered: on_customer_registered,
    inventory.StockReserved: _stock_reply(reserved=True),
    inventory.StockReservationFailed: _stock_reply(reserved=False),
}

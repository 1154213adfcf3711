"""Use cases of the catalog context; each is one transaction on the catalog database."""

from __future__ import annotations

from django.db import IntegrityError

import contracts.catalog as events
from contexts.catalog.domain import Added, Discontinued, PriceChanged
from contexts.catalog.domain import Product as ProductAggregate
from contexts.catalog.models import Product
from orderflow.domain import DomainError, DomainEvent, Money
from orderflow.messaging import outbox
from orderflow.unit_of_work import unit_of_work

DB = "catalog"


class SkuTaken(DomainError):
    code = "sku_taken"


def _publish(domain_events: list[DomainEvent]) -> None:
    for event in domain_events:
        if isinstance(event, Added):
            outbox.record(
                event_type=events.ProductAdded,
                aggregate_id=event.sku,
                data={
                    "sku": event.sku,
                    "name": event.name,
                    "description": event.description,
                    "price": event.price.to_dict(),
                    "active": True,
                },
            )
        elif isinstance(event, PriceChanged):
            outbox.record(
                event_type=events.ProductPriceChanged,
                aggregate_id=event.sku,
                data={
                    "sku": event.sku,
                    "price": event.price.to_dict(),
                    "previous_price": event.previous_price.to_dict(),
                },
            )
        elif isinstance(event, Discontinued):
            outbox.record(event_type=events.ProductDiscontinued, aggregate_id=event.sku, data={"sku": event.sku})


def product_add(*, sku: str, name: str, description: str = "", price: Money) -> Product:
    product = ProductAggregate.add(sku=sku, name=name, description=description, price=price)
    try:
        with unit_of_work(DB):
            row = Product(sku=product.sku)
            row.update_from_domain(product)
            row.save(using=DB, force_insert=True)
            _publish(product.pull_events())
    except IntegrityError:
        raise SkuTaken(f"a product with sku {product.sku} already exists") from None
    return row


def product_update(
    *,
    sku: str,
    name: str | None = None,
    description: str | None = None,
    price: Money | None = None,
    active: bool | None = None,
) -> Product:
    with unit_of_work(DB):
        row = Product.objects.using(DB).select_for_update().get(sku=sku)
        product = row.to_domain()
        product.describe(name=name, description=description)
        if price is not None:
            product.change_price(price)
        if active is False:
            product.discontinue()
        elif active is True and not product.active:
            raise DomainError(f"{sku} is discontinued and cannot be reactivated", code="discontinued")
        row.update_from_domain(product)
        row.save(using=DB)
        _publish(product.pull_events())
    return row

"""Events of the catalog context (stream `catalog.product`, key = sku)."""

from contracts.base import MONEY, SKU, EventType, obj
from contracts.registry import registry

ProductAdded = registry.register(
    EventType(
        context="catalog",
        aggregate="product",
        name="ProductAdded",
        version=1,
        description="A product was added to the catalog.",
        schema=obj(
            {"sku": SKU, "name": {"type": "string", "minLength": 1}, "price": MONEY, "active": {"type": "boolean"}},
            {"description": {"type": "string"}},
        ),
    )
)

ProductPriceChanged = registry.register(
    EventType(
        context="catalog",
        aggregate="product",
        name="ProductPriceChanged",
        version=1,
        description="A product's price changed; orders placed from now on use the new price.",
        schema=obj({"sku": SKU, "price": MONEY, "previous_price": MONEY}),
    )
)

ProductDiscontinued = registry.register(
    EventType(
        context="catalog",
        aggregate="product",
        name="ProductDiscontinued",
        version=1,
        description="A product can no longer be ordered.",
        schema=obj({"sku": SKU}),
    )
)

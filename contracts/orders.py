"""Events of the orders context (stream `orders.order`, key = order id)."""

from contracts.base import MONEY, SKU, UUID, EventType, obj
from contracts.registry import registry

ORDER_LINE = obj({"sku": SKU, "quantity": {"type": "integer", "minimum": 1}, "unit_price": MONEY})

OrderPlaced = registry.register(
    EventType(
        context="orders",
        aggregate="order",
        name="OrderPlaced",
        version=1,
        description="A customer placed an order; stock and payment are now requested.",
        schema=obj(
            {
                "order_id": UUID,
                "customer_id": UUID,
                "lines": {"type": "array", "minItems": 1, "items": ORDER_LINE},
                "total": MONEY,
                "card_token": {"type": "string", "minLength": 1},
            }
        ),
    )
)

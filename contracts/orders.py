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

ORDER_REF = {"order_id": UUID, "customer_id": UUID}

OrderConfirmed = registry.register(
    EventType(
        context="orders",
        aggregate="order",
        name="OrderConfirmed",
        version=1,
        description="Stock is reserved and payment authorized: commit the stock, capture the payment.",
        schema=obj({**ORDER_REF, "lines": {"type": "array", "minItems": 1, "items": ORDER_LINE}, "total": MONEY}),
    )
)

OrderCancelled = registry.register(
    EventType(
        context="orders",
        aggregate="order",
        name="OrderCancelled",
        version=1,
        description="The order is cancelled: release or restock its stock, void or refund its payment.",
        schema=obj({**ORDER_REF, "reason": {"type": "string", "minLength": 1, "maxLength": 200}, "total": MONEY}),
    )
)

OrderShipped = registry.register(
    EventType(
        context="orders",
        aggregate="order",
        name="OrderShipped",
        version=1,
        description="Staff shipped a confirmed order.",
        schema=obj(ORDER_REF),
    )
)

OrderDelivered = registry.register(
    EventType(
        context="orders",
        aggregate="order",
        name="OrderDelivered",
        version=1,
        description="Staff marked a shipped order delivered.",
        schema=obj(ORDER_REF),
    )
)

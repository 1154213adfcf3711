"""Events of the inventory context (stream `inventory.reservation`, key = order id)."""

from contracts.base import SKU, UUID, EventType, obj
from contracts.registry import registry

RESERVED_LINE = obj({"sku": SKU, "quantity": {"type": "integer", "minimum": 1}})
SHORT_LINE = obj(
    {
        "sku": SKU,
        "requested": {"type": "integer", "minimum": 1},
        "available": {"type": "integer", "minimum": 0},
    }
)

StockReserved = registry.register(
    EventType(
        context="inventory",
        aggregate="reservation",
        name="StockReserved",
        version=1,
        description="Every line of an order is reserved.",
        schema=obj({"order_id": UUID, "lines": {"type": "array", "minItems": 1, "items": RESERVED_LINE}}),
    )
)

StockReservationFailed = registry.register(
    EventType(
        context="inventory",
        aggregate="reservation",
        name="StockReservationFailed",
        version=1,
        description="An order could not be reserved in full; nothing was reserved.",
        schema=obj(
            {
                "order_id": UUID,
                "reason": {"type": "string", "enum": ["out_of_stock", "unknown_sku"]},
                "lines": {"type": "array", "items": SHORT_LINE},
            }
        ),
    )
)

StockCommitted = registry.register(
    EventType(
        context="inventory",
        aggregate="reservation",
        name="StockCommitted",
        version=1,
        description="A confirmed order's reserved units left the stock (on hand and reserved both drop).",
        schema=obj({"order_id": UUID, "lines": {"type": "array", "minItems": 1, "items": RESERVED_LINE}}),
    )
)

StockReleased = registry.register(
    EventType(
        context="inventory",
        aggregate="reservation",
        name="StockReleased",
        version=1,
        description="A cancelled order's units are available again (released, or restocked if committed).",
        schema=obj(
            {
                "order_id": UUID,
                "lines": {"type": "array", "minItems": 1, "items": RESERVED_LINE},
                "restocked": {"type": "boolean"},
            }
        ),
    )
)

"""Events of the notifications context (stream `notifications.notification`)."""

from contracts.base import UUID, EventType, obj
from contracts.registry import registry

NOTIFICATION_KINDS = ["order_confirmed", "order_cancelled", "order_shipped", "order_delivered"]

NotificationSent = registry.register(
    EventType(
        context="notifications",
        aggregate="notification",
        name="NotificationSent",
        version=1,
        description="A customer was emailed about their order (at most once per order and kind).",
        schema=obj(
            {
                "notification_id": UUID,
                "order_id": UUID,
                "customer_id": UUID,
                "kind": {"type": "string", "enum": NOTIFICATION_KINDS},
            }
        ),
    )
)

"""Events of the customers context (stream `customers.customer`, key = customer id)."""

from contracts.base import UUID, EventType, obj
from contracts.registry import registry

CustomerRegistered = registry.register(
    EventType(
        context="customers",
        aggregate="customer",
        name="CustomerRegistered",
        version=1,
        description="A customer account was created.",
        schema=obj(
            {
                "customer_id": UUID,
                "email": {"type": "string", "format": "email", "minLength": 3},
                "name": {"type": "string"},
            }
        ),
    )
)

CustomerEmailChanged = registry.register(
    EventType(
        context="customers",
        aggregate="customer",
        name="CustomerEmailChanged",
        version=1,
        description="A customer changed the email address notifications go to.",
        schema=obj(
            {
                "customer_id": UUID,
                "email": {"type": "string", "minLength": 3},
                "previous_email": {"type": "string", "minLength": 3},
            }
        ),
    )
)

CustomerDeactivated = registry.register(
    EventType(
        context="customers",
        aggregate="customer",
        name="CustomerDeactivated",
        version=1,
        description="A customer account was deactivated: it can no longer sign in or order.",
        schema=obj({"customer_id": UUID}),
    )
)

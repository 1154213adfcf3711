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

"""Versioned integration-event contracts shared by every context. Pure Python: no Django, no Kafka.

from contracts import registry
event_type = registry.get("orderflow.orders.OrderPlaced.v1")
event_type.validate(payload)
"""

# Importing the event modules registers their types.
from contracts import catalog, customers, inventory, notifications, orders, payments  # noqa: F401
from contracts.base import ContractError, EventType, UnknownEventType
from contracts.registry import registry

__all__ = ["ContractError", "EventType", "UnknownEventType", "registry"]

"""The registry of event types and upcasters (older versions → the current one)."""

from __future__ import annotations

from typing import Any

from contracts.base import EventType, UnknownEventType, Upcaster


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}
        self._upcasters: dict[str, tuple[EventType, Upcaster]] = {}

    def register(self, event_type: EventType) -> EventType:
        if event_type.type in self._types:
            raise ValueError(f"event type {event_type.type} registered twice")
        self._types[event_type.type] = event_type
        return event_type

    def register_upcaster(self, old: EventType, new: EventType, upcast: Upcaster) -> None:
        """Teach consumers to read `old` payloads as `new` (one version step)."""
        if (old.context, old.name, old.version + 1) != (new.context, new.name, new.version):
            raise ValueError(f"upcaster must go one version up: {old.type} -> {new.type}")
        self._upcasters[old.type] = (new, upcast)

    def get(self, type_: str) -> EventType:
        try:
            return self._types[type_]
        except KeyError:
            raise UnknownEventType(type_) from None

    def __contains__(self, type_: str) -> bool:
        return type_ in self._types

    def all(self) -> list[EventType]:
        return sorted(self._types.values(), key=lambda t: t.type)

    def upcast(self, type_: str, data: dict[str, Any]) -> tuple[EventType, dict[str, Any]]:
        """Validate `data` as `type_`, then lift it through every registered upcaster.

        Returns the latest known type and its payload, validated at each step.
        """
        event_type = self.get(type_)
        event_type.validate(data)
        while event_type.type in self._upcasters:
            event_type, step = self._upcasters[event_type.type]
            data = step(data)
            event_type.validate(data)
        return event_type, data


registry = Registry()

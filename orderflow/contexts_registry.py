"""The bounded contexts this codebase knows, and which of them this process hosts.

A context's name is also its Django app label and its database alias, so the name alone tells
where its tables live and which outbox/inbox belong to it.
"""

from __future__ import annotations

ALL_CONTEXTS: tuple[str, ...] = (
    "customers",
    "catalog",
    "inventory",
    "orders",
    "payments",
    "notifications",
)


def parse_hosted(value: str | None) -> tuple[str, ...]:
    """Parse ORDERFLOW_CONTEXTS ("all", empty, or a comma list) into known context names."""
    if not value or value.strip().lower() == "all":
        return ALL_CONTEXTS
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in ALL_CONTEXTS]
    if unknown:
        raise ValueError(
            f"ORDERFLOW_CONTEXTS names unknown context(s) {', '.join(unknown)}; known: {', '.join(ALL_CONTEXTS)}"
        )
    # Keep the canonical order so settings and process lists are stable.
    return tuple(n for n in ALL_CONTEXTS if n in names)


def per_context_ms(setting: str, values: dict[str, str]) -> dict[str, int]:
    """Parse a per-context setting of milliseconds ({"notifications": "100"}) into known context
    names and non-negative integers; anything else is refused with the setting's name."""
    unknown = [name for name in values if name not in ALL_CONTEXTS]
    if unknown:
        raise ValueError(f"{setting} names unknown context(s) {', '.join(unknown)}; known: {', '.join(ALL_CONTEXTS)}")
    parsed = {}
    for name, value in values.items():
        try:
            parsed[name] = int(value)
        except (TypeError, ValueError):
            parsed[name] = -1
        if parsed[name] < 0:
            raise ValueError(f"{setting}: {name}={value!r} is not a whole number of milliseconds")
    return parsed


def context_queue(context: str) -> str:
    """The Celery queue of a context's tasks. In service mode a worker hosts one context and must
    never receive another context's relay (it has no access to that database)."""
    return f"orderflow.{context}"

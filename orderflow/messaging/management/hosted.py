"""Which contexts a management command may work on: those this process hosts."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.core.management.base import CommandError


def hosted_contexts(requested: Sequence[str]) -> list[str]:
    """The requested contexts, or every hosted one if none was named. A context this process does
    not host (unknown, or left out of ORDERFLOW_CONTEXTS) is refused by name: its database alias
    and app are not configured here, and Django's own error would not say why."""
    unknown = [c for c in requested if c not in settings.ORDERFLOW_CONTEXTS]
    if unknown:
        raise CommandError(
            f"context(s) {', '.join(map(repr, unknown))} not hosted by this process "
            f"(ORDERFLOW_CONTEXTS: {', '.join(settings.ORDERFLOW_CONTEXTS)})"
        )
    return list(requested or settings.ORDERFLOW_CONTEXTS)

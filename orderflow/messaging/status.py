"""What an operator asks first: how far behind is each context, and what is stuck."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.apps import apps
from django.db.models import Min, Q
from django.utils import timezone


@dataclass(frozen=True)
class ContextStatus:
    context: str
    backlog: int  # unpublished outbox rows
    oldest_unpublished_age_s: float | None
    parked: int  # unpublished rows waiting for their next attempt
    failed: int  # unpublished rows that failed at least once
    published_retained: int
    dead_letters: int  # not replayed yet
    parked_keys: int  # consumer-side keys waiting behind a failed record

    def as_dict(self) -> dict:
        return asdict(self)


def backlog(context: str) -> int:
    """Unpublished outbox rows of `context` (one count through the pending rows' partial index)."""
    return apps.get_model(context, "OutboxEvent").objects.using(context).filter(published_at__isnull=True).count()


def context_status(context: str) -> ContextStatus:
    outbox = apps.get_model(context, "OutboxEvent").objects.using(context)
    now = timezone.now()
    counts = outbox.aggregate(
        oldest=Min("occurred_at", filter=Q(published_at__isnull=True)),
    )
    pending = outbox.filter(published_at__isnull=True)
    oldest = counts["oldest"]
    return ContextStatus(
        context=context,
        backlog=backlog(context),
        oldest_unpublished_age_s=round((now - oldest).total_seconds(), 1) if oldest else None,
        parked=pending.filter(next_attempt_at__gt=now).count(),
        failed=pending.filter(attempts__gt=0).count(),
        published_retained=outbox.filter(published_at__isnull=False).count(),
        dead_letters=apps.get_model(context, "DeadLetter")
        .objects.using(context)
        .filter(replayed_at__isnull=True)
        .count(),
        parked_keys=apps.get_model(context, "ParkedKey").objects.using(context).count(),
    )

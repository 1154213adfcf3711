"""`python manage.py outbox_status [--json]`: backlog, oldest unpublished age, parked, failed and
dead letters per hosted context. Exit code 0; the numbers are the answer."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from orderflow.messaging.management.hosted import hosted_contexts
from orderflow.messaging.status import context_status

COLUMNS = [
    ("context", "context"),
    ("backlog", "backlog"),
    ("oldest_unpublished_age_s", "oldest (s)"),
    ("parked", "parked"),
    ("failed", "failed"),
    ("published_retained", "published"),
    ("dead_letters", "dead letters"),
    ("parked_keys", "parked keys"),
]


class Command(BaseCommand):
    help = "Show each context's outbox backlog, parked and failed events, and dead letters."

    def add_arguments(self, parser):
        parser.add_argument("contexts", nargs="*", help="contexts (default: all hosted)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, contexts: list[str], json: bool = False, **options):
        rows = [context_status(c).as_dict() for c in hosted_contexts(contexts)]
        if json:
            self.stdout.write(_dumps(rows))
            return
        table = [[label for _, label in COLUMNS]] + [
            ["-" if row[key] is None else str(row[key]) for key, _ in COLUMNS] for row in rows
        ]
        widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
        for line in table:
            self.stdout.write(
                "  ".join(
                    cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
                )
            )


def _dumps(rows) -> str:
    return json.dumps(rows, indent=2)

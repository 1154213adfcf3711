"""`python manage.py event_catalog [--write]`: print or write docs/events.md."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from orderflow.messaging.catalog import render


class Command(BaseCommand):
    help = "Render the event catalog (producers, consumers, schemas) from contracts and handlers."

    def add_arguments(self, parser):
        parser.add_argument("--write", action="store_true", help="write docs/events.md instead of printing")

    def handle(self, *args, write: bool = False, **options):
        text = render()
        if write:
            path = settings.BASE_DIR / "docs" / "events.md"
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            self.stdout.write(f"wrote {path}")
        else:
            self.stdout.write(text, ending="")

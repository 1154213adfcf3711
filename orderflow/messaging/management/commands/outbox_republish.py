"""`python manage.py outbox_republish`: send every retained outbox row again, in order.

For a fresh broker that has lost what was published (the memory-only embedded broker after a
restart, or a new Kafka cluster after a disaster). Consumers' inboxes skip what they applied.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from orderflow.messaging.management.hosted import hosted_contexts
from orderflow.messaging.relay import republish_retained


class Command(BaseCommand):
    help = "Mark all retained (published) outbox rows unpublished so the relay sends them again."

    def add_arguments(self, parser):
        parser.add_argument("contexts", nargs="*", help="contexts (default: all hosted)")

    def handle(self, *args, contexts: list[str], **options):
        for context in hosted_contexts(contexts):
            count = republish_retained(context=context)
            self.stdout.write(f"{context}: {count} event(s) queued for republishing")

"""`python manage.py relay_outbox [context...]`: drain outboxes now, in the foreground."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from orderflow.messaging.kafka import shared_producer
from orderflow.messaging.relay import relay_outbox


class Command(BaseCommand):
    help = "Relay pending outbox events to Kafka now (what the Celery task does every second)."

    def add_arguments(self, parser):
        parser.add_argument("contexts", nargs="*")

    def handle(self, *args, contexts: list[str], **options):
        for context in contexts or settings.ORDERFLOW_CONTEXTS:
            result = relay_outbox(
                context=context,
                producer=shared_producer(),
                batch_size=settings.OUTBOX_RELAY_BATCH_SIZE,
                max_seconds=3600,
            )
            self.stdout.write(f"{context}: published {result.published}, failed {result.failed}")

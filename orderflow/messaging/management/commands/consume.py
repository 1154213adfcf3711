"""`python manage.py consume <context>`: run the context's Kafka consumer group until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
from contextlib import nullcontext

from django.conf import settings
from django.core.management.base import BaseCommand

from orderflow.messaging import outbox
from orderflow.messaging.consumer import ContextConsumer
from orderflow.messaging.kafka import warm_up_shared_producer
from orderflow.messaging.management.hosted import hosted_contexts


class Command(BaseCommand):
    help = "Consume the events a bounded context subscribes to (inbox-deduplicated)."

    def add_arguments(self, parser):
        parser.add_argument("context", help="bounded context, e.g. inventory")
        parser.add_argument("--group", help="consumer group id (default orderflow.<context>)")

    def handle(self, *args, context: str, group: str | None, **options):
        hosted_contexts([context])
        consumer = ContextConsumer(context, group_id=group)

        def stop(signum, _frame):
            self.stderr.write(f"{signal.Signals(signum).name}: draining and leaving the group")
            consumer.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if settings.CONSUMER_RELAY_INLINE:
            warm_up_shared_producer()  # this process relays its context's events
        with outbox.inline_relay(context) if settings.CONSUMER_RELAY_INLINE else nullcontext():
            consumer.run()

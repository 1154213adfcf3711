"""`python manage.py relay_outbox [context...]`: drain outboxes now, in the foreground; with
`--listen`, keep relaying each context as its commits are announced, until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orderflow.messaging import outbox
from orderflow.messaging.kafka import shared_producer, warm_up_shared_producer
from orderflow.messaging.management.hosted import hosted_contexts
from orderflow.messaging.relay import relay_outbox


class Command(BaseCommand):
    help = (
        "Relay pending outbox events to Kafka now (what the Celery task does every second); with --listen, "
        "run the contexts' listening relays (what each consumer process runs for its own context)."
    )

    def add_arguments(self, parser):
        parser.add_argument("contexts", nargs="*")
        parser.add_argument(
            "--listen",
            action="store_true",
            help="keep running: relay each context whenever a commit on its outbox is announced (LISTEN/NOTIFY)",
        )

    def handle(self, *args, contexts: list[str], listen: bool, **options):
        contexts = hosted_contexts(contexts)
        if listen:
            self._listen(contexts)
            return
        for context in contexts:
            result = relay_outbox(
                context=context,
                producer=shared_producer(),
                batch_size=settings.OUTBOX_RELAY_BATCH_SIZE,
                max_seconds=3600,
            )
            self.stdout.write(f"{context}: published {result.published}, failed {result.failed}")

    def _listen(self, contexts: list[str]) -> None:
        if not settings.OUTBOX_RELAY_LISTEN:
            raise CommandError("--listen needs OUTBOX_RELAY_LISTEN (commits are not announced without it)")
        stop = threading.Event()

        def on_signal(signum, _frame):
            self.stderr.write(f"{signal.Signals(signum).name}: a last run, then stopping")
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        warm_up_shared_producer()
        with ExitStack() as relays:
            for context in contexts:
                relays.enter_context(outbox.inline_relay(context))
            self.stdout.write(f"relaying {', '.join(contexts)} as commits are announced", ending="\n")
            self.stdout.flush()
            stop.wait()

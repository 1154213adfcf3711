"""`python manage.py await_settled [--timeout S] [context ...]`: wait until every outbox is drained
and every consumer group has joined and consumed its topics to the end. Exit 0 when settled; 1,
saying what is still behind, when the timeout passes first."""

from __future__ import annotations

from confluent_kafka import KafkaException
from django.core.management.base import BaseCommand, CommandError

from orderflow.messaging.management.hosted import hosted_contexts
from orderflow.messaging.settle import await_settled


class Command(BaseCommand):
    help = "Wait until outboxes are drained and consumer groups have caught up."

    def add_arguments(self, parser):
        parser.add_argument("contexts", nargs="*", help="contexts (default: all hosted)")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")

    def handle(self, *args, contexts: list[str], timeout: float, **options):
        try:
            lags = await_settled(hosted_contexts(contexts), timeout=timeout)
        except KafkaException as exc:
            raise CommandError(f"the Kafka broker did not answer within {timeout:g} s: {exc}") from exc
        behind = [lag for lag in lags if not lag.settled]
        if behind:
            raise CommandError(
                f"not settled after {timeout:g} s:\n" + "\n".join(f"  {lag.describe()}" for lag in behind)
            )
        self.stdout.write(f"settled: {len(lags)} context(s), outboxes drained, consumer groups caught up")

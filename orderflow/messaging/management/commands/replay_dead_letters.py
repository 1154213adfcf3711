"""`python manage.py replay_dead_letters <context> (--id N ... | --all) [--by NAME]`

Send dead letters back to the context's consumer, unchanged. Each replay is recorded (who, when,
how many times); the inbox makes a second replay of an applied event a no-op.
"""

from __future__ import annotations

import getpass

from confluent_kafka import Producer
from django.core.management.base import BaseCommand, CommandError

from orderflow.messaging.deadletters import dead_letter_model, replay
from orderflow.messaging.kafka import producer_config
from orderflow.messaging.management.hosted import hosted_contexts


class Command(BaseCommand):
    help = "Replay dead letters of a context (by id, or all not yet replayed)."

    def add_arguments(self, parser):
        parser.add_argument("context")
        parser.add_argument("--id", dest="ids", type=int, action="append", help="dead letter id (repeatable)")
        parser.add_argument("--all", action="store_true", help="every dead letter not replayed yet")
        parser.add_argument("--by", default=None, help="who replays (default: the OS user)")

    def handle(self, *args, context: str, ids: list[int] | None, all: bool, by: str | None, **options):
        hosted_contexts([context])
        if bool(ids) == bool(all):
            raise CommandError("give either --id N (one or more) or --all")
        if all:
            ids = list(
                dead_letter_model(context)
                .objects.using(context)
                .filter(replayed_at__isnull=True)
                .values_list("id", flat=True)
            )
        else:
            known = set(
                dead_letter_model(context).objects.using(context).filter(id__in=ids).values_list("id", flat=True)
            )
            if missing := sorted(set(ids) - known):
                raise CommandError(f"no dead letter with id {', '.join(map(str, missing))} in {context}")
        count = replay(
            context=context, ids=ids, by=by or f"cli:{getpass.getuser()}", producer=Producer(producer_config())
        )
        self.stdout.write(f"{context}: replayed {count} dead letter(s)")

"""`python manage.py migrate_contexts`: migrate `default` and every hosted context's database,
creating the context databases first when they do not exist (the embedded stack and tests)."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from orderflow.messaging.databases import ensure_database


class Command(BaseCommand):
    help = "Create (if missing) and migrate the default database and each hosted context's database."

    def add_arguments(self, parser):
        parser.add_argument("--no-create", action="store_true", help="do not create missing databases")

    def handle(self, *args, no_create: bool = False, **options):
        for alias in ["default", *settings.ORDERFLOW_CONTEXTS]:
            if not no_create and ensure_database(alias):
                self.stdout.write(f"created database {settings.DATABASES[alias]['NAME']}")
            call_command("migrate", database=alias, interactive=False, verbosity=max(0, options["verbosity"] - 1))
            self.stdout.write(f"migrated {alias}")

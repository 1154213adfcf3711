"""`python manage.py seed_demo`: demo data of every hosted context (idempotent; dev settings only)."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

ADMIN_EMAIL = "admin@orderflow.local"
ADMIN_PASSWORD = "admin"


class Command(BaseCommand):
    help = "Create the demo staff user, catalog and stock (refused by production settings)."

    def handle(self, *args, **options):
        if not getattr(settings, "SEED_DEMO_ALLOWED", False):
            raise CommandError("seed_demo is refused by these settings (it creates a staff user with a known password)")
        # The operator login of /admin/ lives in `default`; the API identity in customers.
        user_model = get_user_model()
        if not user_model.objects.filter(username=ADMIN_EMAIL).exists():
            user_model.objects.create_superuser(username=ADMIN_EMAIL, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
            self.stdout.write(f"admin site superuser {ADMIN_EMAIL}")
        for context in settings.ORDERFLOW_CONTEXTS:
            try:
                seed = import_module(f"contexts.{context}.seed")
            except ModuleNotFoundError:
                continue
            self.stdout.write(f"{context}: {seed.seed_demo()}")

"""Keep each bounded context's tables in its own database.

A context's app label equals its database alias; everything else (Django's own apps and the
shared messaging app, which has no tables of its own) stays on `default`.
"""

from __future__ import annotations

from django.conf import settings


def _alias(app_label: str) -> str:
    return app_label if app_label in settings.ORDERFLOW_CONTEXTS else "default"


class ContextRouter:
    def db_for_read(self, model, **hints):
        return _alias(model._meta.app_label)

    def db_for_write(self, model, **hints):
        return _alias(model._meta.app_label)

    def allow_relation(self, obj1, obj2, **hints):
        # Relations never cross a context's database.
        return _alias(obj1._meta.app_label) == _alias(obj2._meta.app_label)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == _alias(app_label)

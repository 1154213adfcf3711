"""The Celery app. Beat runs each hosted context's relay every second (the safety net behind the
commit-hook kick) and the retention purges hourly."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

from orderflow.contexts_registry import context_queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orderflow.settings.dev")

app = Celery("orderflow")
app.config_from_object("django.conf:settings", namespace="CELERY")

# Celery's Django fixup closes every database connection before and after each task unless
# `CELERY_DB_REUSE_MAX` is set, and it looks that key up in app.conf by its old upper-case name,
# which `namespace="CELERY"` never maps a Django setting to: set it here. The fixup then only
# recycles connections every DB_REUSE_MAX tasks, and `close_old_connections` below gives tasks
# Django's per-request rules instead: reuse for CONN_MAX_AGE, close after an error, health-check
# before reuse (CONN_HEALTH_CHECKS). Reconnecting to PostgreSQL for every relay run was about a
# fifth of the worker's CPU in the saga benchmark's profile. (Test settings keep CONN_MAX_AGE = 0,
# so there every task still gets a fresh connection.)
DB_REUSE_MAX = 1000
app.conf.CELERY_DB_REUSE_MAX = DB_REUSE_MAX


@task_prerun.connect
@task_postrun.connect
def _django_connection_hygiene(**_kwargs) -> None:
    from django.db import close_old_connections

    close_old_connections()


def _task_packages() -> list[str]:
    from django.conf import settings

    return ["orderflow.messaging", *(f"contexts.{c}" for c in settings.ORDERFLOW_CONTEXTS)]


app.autodiscover_tasks(_task_packages)


def _context_tasks_modules():
    """Hosted contexts' `tasks` modules (plugin discovery: the kernel never imports a context)."""
    from importlib import import_module

    from django.conf import settings

    for context in settings.ORDERFLOW_CONTEXTS:
        try:
            yield context, import_module(f"contexts.{context}.tasks")
        except ModuleNotFoundError as exc:
            if exc.name != f"contexts.{context}.tasks":
                raise


@app.on_after_finalize.connect
def schedule_periodic_tasks(sender: Celery, **_kwargs) -> None:
    from django.conf import settings

    for context in settings.ORDERFLOW_CONTEXTS:
        queue = context_queue(context)
        sender.add_periodic_task(
            1.0,
            sender.signature("orderflow.relay_outbox", args=[context], queue=queue),
            name=f"relay {context} outbox",
            expires=5,
        )
        sender.add_periodic_task(
            3600.0,
            sender.signature("orderflow.purge_messaging", args=[context], queue=queue),
            name=f"purge {context} outbox and inbox",
        )
    # A context lists its periodic tasks as `PERIODIC = [(seconds, task), ...]` in its tasks module.
    for context, module in _context_tasks_modules():
        for seconds, task in getattr(module, "PERIODIC", ()):
            sender.add_periodic_task(
                seconds, task.s().set(queue=context_queue(context)), name=f"{context}: {task.name}", expires=seconds
            )

"""Celery tasks keep their PostgreSQL connections the way Django requests do.

Celery's Django fixup (installed in every worker) closes all connections around each task unless
`CELERY_DB_REUSE_MAX` is set; orderflow.celery sets it and runs `close_old_connections` around
tasks instead. These tests drive the fixup and our hook exactly as the worker's signals do, on the
real database: reuse within CONN_MAX_AGE, a fresh connection with CONN_MAX_AGE = 0, and a
connection killed between tasks replaced before the next task's first query.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connections

from orderflow.celery import _django_connection_hygiene, app
from orderflow.messaging.tasks import relay_outbox

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

ALIAS = "orders"


def _backend_pid() -> int:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _between_tasks(fixup: DjangoWorkerFixup) -> None:
    """What the worker runs after one task and before the next (task_postrun, task_prerun)."""
    fixup.on_task_postrun(sender=relay_outbox)
    _django_connection_hygiene()
    fixup.on_task_prerun(sender=relay_outbox)
    _django_connection_hygiene()


@contextmanager
def _max_age(seconds: int) -> Iterator[None]:
    connection = connections[ALIAS]
    before = connection.settings_dict["CONN_MAX_AGE"]
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = seconds
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["CONN_MAX_AGE"] = before


def test_the_fixup_sees_the_reuse_setting():
    assert DjangoWorkerFixup(app).db_reuse_max == app.conf.CELERY_DB_REUSE_MAX > 0


def test_a_connection_is_reused_across_tasks_within_conn_max_age():
    fixup = DjangoWorkerFixup(app)
    with _max_age(60):
        first = _backend_pid()
        for _ in range(3):
            _between_tasks(fixup)
            assert _backend_pid() == first


def test_conn_max_age_zero_gives_every_task_a_fresh_connection():
    fixup = DjangoWorkerFixup(app)
    with _max_age(0):
        first = _backend_pid()
        _between_tasks(fixup)
        assert _backend_pid() != first


def test_a_connection_killed_between_tasks_is_replaced_before_the_next_query():
    fixup = DjangoWorkerFixup(app)
    with _max_age(60):
        victim = _backend_pid()
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [victim])
            assert cursor.fetchone()[0] is True
        _between_tasks(fixup)
        # The health check (CONN_HEALTH_CHECKS) finds the dead connection and reconnects: the
        # task's first query works instead of failing.
        assert _backend_pid() != victim

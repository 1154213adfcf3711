"""Use cases nested in a consumer's all-or-nothing transaction take no savepoint; elsewhere they do."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from contexts.orders.models import TimelineEntry
from orderflow.unit_of_work import all_or_nothing, unit_of_work

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def _savepoints(run) -> int:
    with CaptureQueriesContext(connections["orders"]) as queries:
        run()
    return sum(1 for q in queries.captured_queries if q["sql"].upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT")))


def _nested_use_case() -> None:
    with unit_of_work("orders"):
        TimelineEntry.objects.using("orders").count()


def test_nested_units_take_no_savepoint_inside_all_or_nothing():
    def consumer_batch():
        with all_or_nothing("orders"):
            for _ in range(3):
                _nested_use_case()

    assert _savepoints(consumer_batch) == 0


def test_nested_units_keep_their_savepoint_elsewhere():
    def request():
        from django.db import transaction

        with transaction.atomic(using="orders"):
            _nested_use_case()

    assert _savepoints(request) == 2  # SAVEPOINT and RELEASE


def test_a_failure_in_a_nested_unit_rolls_the_whole_transaction_back():
    class Boom(Exception):
        pass

    with pytest.raises(Boom), all_or_nothing("orders"):
        TimelineEntry.objects.using("orders").create(
            order_id="00000000-0000-0000-0000-000000000001",
            event_id="e",
            type="t",
            source="s",
            occurred_at="2026-01-01T00:00Z",
        )
        with unit_of_work("orders"):
            raise Boom()
    assert TimelineEntry.objects.using("orders").count() == 0

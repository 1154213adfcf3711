"""Hot statements on psycopg's own cursor (orderflow.messaging.bulk) behave as Django's cursor does:
same transaction, django.db errors, statements logged; pipelined writes fail where the block ends."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, InternalError, connections, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from contexts.inventory.models import StockItem
from orderflow.messaging import bulk

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

DB = "inventory"
INSERT = "INSERT INTO inventory_stockitem (sku, on_hand, reserved, updated_at) VALUES (%s, %s, 0, now())"


def test_prepared_statements_join_the_transaction_and_are_logged():
    with CaptureQueriesContext(connections[DB]) as queries:
        with transaction.atomic(using=DB):
            bulk.execute(DB, INSERT, ["SKU-P1", 5])
            rows = bulk.execute(DB, "SELECT on_hand FROM inventory_stockitem WHERE sku = %s", ["SKU-P1"], fetch=True)
            assert rows == [(5,)]
            transaction.set_rollback(True, using=DB)
    assert not StockItem.objects.using(DB).filter(sku="SKU-P1").exists()  # rolled back with the transaction
    assert [q["sql"] for q in queries.captured_queries if "inventory_stockitem" in q["sql"]] == [
        INSERT,
        "SELECT on_hand FROM inventory_stockitem WHERE sku = %s",
    ]


def test_a_failed_prepared_statement_raises_django_errors():
    bulk.execute(DB, INSERT, ["SKU-P2", 1])
    with pytest.raises(IntegrityError), transaction.atomic(using=DB):
        with pytest.raises(IntegrityError):
            bulk.execute(DB, INSERT, ["SKU-P2", 1])
        with pytest.raises(InternalError):  # the aborted transaction, as a django.db error like Django's cursor gives
            bulk.execute(DB, "SELECT 1", [])
        raise IntegrityError("leave the block")


def test_pipelined_writes_land_together_and_a_failure_surfaces_at_the_end_of_the_block():
    with transaction.atomic(using=DB):
        with bulk.pipelined(DB), bulk.PreparedCursor(DB) as cursor:
            cursor.execute(INSERT, ["SKU-P3", 1])
            cursor.execute(INSERT, ["SKU-P4", 2])
    assert set(StockItem.objects.using(DB).values_list("sku", flat=True)) >= {"SKU-P3", "SKU-P4"}

    with pytest.raises(DatabaseError), transaction.atomic(using=DB):
        with pytest.raises(IntegrityError), bulk.pipelined(DB), bulk.PreparedCursor(DB) as cursor:
            cursor.execute(INSERT, ["SKU-P5", 1])
            cursor.execute(INSERT, ["SKU-P3", 1])  # duplicate key: known only when the pipeline syncs
            cursor.execute(INSERT, ["SKU-P6", 1])
        raise DatabaseError("the transaction is broken; leave it")
    assert not StockItem.objects.using(DB).filter(sku__in=["SKU-P5", "SKU-P6"]).exists()


def test_a_transaction_django_marked_for_rollback_is_refused():
    bulk.execute(DB, INSERT, ["SKU-P7", 1])
    with transaction.atomic(using=DB):
        with pytest.raises(IntegrityError), transaction.atomic(using=DB, savepoint=False):
            bulk.execute(DB, INSERT, ["SKU-P7", 1])
        with pytest.raises(TransactionManagementError):
            bulk.execute(DB, "SELECT 1", [])


def test_hot_statements_are_prepared_once_per_connection_and_then_reuse_their_plan():
    # Django turns psycopg's prepared statements off (prepare_threshold=None) unless OPTIONS set it;
    # `prepare=True` was then silently ignored and every hot statement parsed and planned again.
    sql = "SELECT on_hand FROM inventory_stockitem WHERE sku = ANY(%s) ORDER BY sku"
    for _ in range(8):
        bulk.execute(DB, sql, [["SKU-P7", "SKU-P8"]], fetch=True)
    with connections[DB].cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans + custom_plans, generic_plans FROM pg_prepared_statements WHERE statement = %s",
            [sql.replace("%s", "$1")],
        )
        row = cursor.fetchone()
    assert row is not None, "not prepared: is psycopg's prepare_threshold None (Django's default)?"
    executions, generic = row
    assert executions == 8  # one prepared statement, executed eight times
    assert generic >= 3  # PostgreSQL's plan cache settled on one generic plan after five custom ones


def test_django_queries_stay_unprepared():
    # The ORM's client-side binding never prepares, whatever the threshold: a pooler that cannot
    # keep prepared statements only ever sees the hot statements' (DB_PREPARED_STATEMENTS=false).
    for _ in range(8):
        list(StockItem.objects.using(DB).filter(sku="SKU-P9"))
    with connections[DB].cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert not [s for s in prepared if '"inventory_stockitem"."sku"' in s], prepared

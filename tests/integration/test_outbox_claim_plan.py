"""The relay's claim reads only the pending rows, however many published rows the outbox keeps.

Published rows stay until the hourly purge. A BRIN index on `published_at` whose block ranges were
summarized while their rows were pending says "has nulls" for every range, and the planner took it
for the claim's `published_at IS NULL`: a lossy bitmap over the whole table, rechecked block by
block. The index is partial (published rows only), so the claim goes through the pending index.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone

from contexts.inventory.models import OutboxEvent
from orderflow.messaging import relay

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

DB = "inventory"
TABLE = '"inventory_outboxevent"'


def _insert(cursor, n: int) -> None:
    """`n` pending StockReserved rows."""
    cursor.execute(
        f"INSERT INTO {TABLE} (id, aggregatetype, aggregateid, type, payload, topic, headers, occurred_at, "
        "attempts, last_error) "
        "SELECT gen_random_uuid(), 'Reservation', n::text, 'orderflow.inventory.StockReserved.v1', "
        "'{\"n\": 1}', 'inventory.reservation', '{}', now(), 0, '' FROM generate_series(1, %s) AS n",
        [n],
    )


def _claim_blocks() -> tuple[int, int]:
    """Run the relay's claim under EXPLAIN ANALYZE (rolled back): (rows claimed, buffers touched)."""
    claim = relay._CLAIM.format(table=TABLE, pick=relay._PICK.format(table=TABLE))
    with transaction.atomic(using=DB), connections[DB].cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + claim.replace("%(after)s", "0").replace("%(limit)s", "1000")
        )
        (plan,) = cursor.fetchone()
        transaction.set_rollback(True, using=DB)
    plan = plan if isinstance(plan, list) else json.loads(plan)
    top = plan[0]["Plan"]
    return _rows_returned(top), top["Shared Hit Blocks"] + top.get("Shared Read Blocks", 0)


def _rows_returned(node: dict) -> int:
    # The Update node returns nothing to EXPLAIN; its scan child returns the rows it claims.
    return int(node["Plans"][-1]["Actual Rows"]) if node.get("Plans") else int(node["Actual Rows"])


def test_a_claim_in_an_outbox_of_published_rows_touches_a_handful_of_blocks():
    # How a busy outbox looks: block ranges summarized while their rows were pending, the rows
    # published since, autovacuum's statistics saying nearly nothing is pending; then one new event.
    with connections[DB].cursor() as cursor:
        _insert(cursor, 30_000)
        cursor.execute("SELECT brin_summarize_new_values('inventory_outbox_published')")
        cursor.execute(f"UPDATE {TABLE} SET published_at = now()")
        cursor.execute(f"VACUUM ANALYZE {TABLE}")
        _insert(cursor, 1)
        cursor.execute("SELECT pg_relation_size('inventory_outboxevent') / current_setting('block_size')::int")
        (table_blocks,) = cursor.fetchone()
    claimed, blocks = _claim_blocks()
    assert claimed == 1
    assert table_blocks > 500, table_blocks  # big enough that a scan of the table is unmistakable
    assert blocks < 50, f"the claim touched {blocks} of the table's {table_blocks} blocks"
    # The relay runs it prepared (decision 51): the plan PostgreSQL may cache for any parameters
    # must not scan the table either.
    scans = _generic_plan_scans()
    assert scans and {index for _kind, index in scans} == {"inventory_outbox_pending"}, scans


def _generic_plan_scans() -> list[tuple[str, str | None]]:
    """(node type, index) of every scan in the claim's generic plan (EXPLAIN (GENERIC_PLAN))."""
    claim = relay._CLAIM.format(table=TABLE, pick=relay._PICK.format(table=TABLE))
    with connections[DB].cursor() as cursor:
        cursor.execute(
            "EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + claim.replace("%(after)s", "$1").replace("%(limit)s", "$2")
        )
        (plan,) = cursor.fetchone()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    scans, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        if "Scan" in node["Node Type"]:
            scans.append((node["Node Type"], node.get("Index Name")))
        todo.extend(node.get("Plans", []))
    return scans


def test_the_purge_still_reads_published_rows_through_the_brin_index():
    with connections[DB].cursor() as cursor:
        _insert(cursor, 30_000)  # the oldest thousand published a day ago, the rest just now
        cursor.execute(
            f"UPDATE {TABLE} SET published_at = CASE WHEN position < (SELECT min(position) + 1000 FROM {TABLE}) "
            "THEN now() - interval '1 day' ELSE now() END"
        )
        cursor.execute(f"VACUUM ANALYZE {TABLE}")
    cutoff = timezone.now() - timedelta(hours=1)
    # The purge's filter (relay.purge_published; a queryset's delete() drops the ordering).
    query = OutboxEvent.objects.using(DB).filter(published_at__isnull=False, published_at__lt=cutoff).order_by()
    plan = query.explain()
    assert "inventory_outbox_published" in plan, plan

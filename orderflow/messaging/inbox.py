"""The inbox: remember which events a consumer applied, in the same transaction as the effect."""

from __future__ import annotations

from django.apps import apps
from django.db import connections

from orderflow.messaging import bulk


def inbox_model(context: str):
    return apps.get_model(context, "InboxEvent")


def claim(*, context: str, consumer: str, event_id: str, type_: str, topic: str, partition: int, offset: int) -> bool:
    """Insert the inbox row first; False if this consumer already applied the event.

    Runs inside the handler's transaction: if the handler fails, the claim rolls back with it.
    """
    table = connections[context].ops.quote_name(inbox_model(context)._meta.db_table)
    with connections[context].cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} (consumer, event_id, type, topic, partition, "offset", processed_at) '
            "VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (consumer, event_id) DO NOTHING RETURNING 1",
            [consumer, event_id, type_, topic, partition, offset],
        )
        return cursor.fetchone() is not None


def claim_many(*, context: str, consumer: str, records: list[tuple[str, str, str, int, int]]) -> set[str]:
    """Claim a batch at once: `records` are (event_id, type, topic, partition, offset). Returns the
    event ids this consumer had not applied yet (one round trip instead of one per record).

    The batch travels as one JSON parameter of a prepared statement (see orderflow/messaging/bulk.py).
    """
    if not records:
        return set()
    table = connections[context].ops.quote_name(inbox_model(context)._meta.db_table)
    rows = bulk.execute(
        context,
        f'INSERT INTO {table} (consumer, event_id, type, topic, partition, "offset", processed_at) '
        'SELECT %s, r.event_id, r.type, r.topic, r.partition, r."offset", now() '
        "FROM json_to_recordset(%s::json) "
        'AS r(event_id text, type text, topic text, partition integer, "offset" bigint) '
        "ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id",
        [consumer, bulk.json_rows(("event_id", "type", "topic", "partition", "offset"), records)],
        fetch=True,
    )
    return {row[0] for row in rows}


def purge_inbox(*, context: str, older_than) -> int:
    deleted, _ = inbox_model(context).objects.using(context).filter(processed_at__lt=older_than).delete()
    return deleted

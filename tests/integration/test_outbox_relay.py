"""The transactional outbox and its relay, on the real database and broker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings
from django.db import connections, transaction

from contexts.catalog import services as catalog
from contexts.catalog.models import OutboxEvent
from orderflow import tracing
from orderflow.contexts_registry import context_queue
from orderflow.domain import Money
from orderflow.messaging import outbox, tasks
from orderflow.messaging.kafka import shared_producer, topic_name
from orderflow.messaging.relay import purge_published, relay_batch, relay_lock_key, relay_outbox
from tests.fixtures.kafka import read_topic
from tests.fixtures.relay import queued_relay_tasks

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def relay(context: str = "catalog"):
    return relay_outbox(context=context, producer=shared_producer(), batch_size=50)


def test_rolled_back_transaction_leaves_no_outbox_row_and_no_event(kafka_ns):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic(using="catalog"):
        catalog.product_add(sku="SKU-RB", name="Rolled back", price=Money.of("1.00", "USD"))
        raise Boom()
    assert OutboxEvent.objects.using("catalog").count() == 0
    assert relay().published == 0
    catalog.product_add(sku="SKU-OK", name="Committed", price=Money.of("1.00", "USD"))
    assert relay().published == 1
    messages = read_topic(topic_name("catalog.product"), expect=2, timeout=8, settle=1)
    assert [m.key() for m in messages] == [b"SKU-OK"]


def test_relayed_events_carry_key_headers_and_keep_per_aggregate_order(kafka_ns):
    skus = ["SKU-A", "SKU-B", "SKU-C"]
    parent = tracing.from_headers("00-" + "c" * 32 + "-" + "d" * 16 + "-01", "corr-42")
    with tracing.use(parent):
        for sku in skus:
            catalog.product_add(sku=sku, name=sku, price=Money.of("1.00", "USD"))
        for cents in range(2, 12):  # interleaved price changes across the three products
            for sku in skus:
                catalog.product_update(sku=sku, price=Money.of(f"{cents}.00", "USD"))
    expected = 3 + 30
    assert relay().published == expected
    assert OutboxEvent.objects.using("catalog").filter(published_at__isnull=True).count() == 0

    messages = read_topic(topic_name("catalog.product"), expect=expected)
    assert len(messages) == expected
    rows = {str(r.event_id): r for r in OutboxEvent.objects.using("catalog").all()}
    by_key: dict[bytes, list[int]] = {}
    for message in messages:
        headers = {k: v.decode() for k, v in message.headers()}
        row = rows[headers["ce_id"]]
        assert message.key() == row.aggregateid.encode() == headers["ce_subject"].encode()
        assert headers["ce_type"] == row.type and headers["ce_source"] == "/orderflow/catalog"
        assert headers["ce_specversion"] == "1.0" and headers["content-type"] == "application/json"
        assert headers["traceparent"].startswith("00-" + "c" * 32 + "-")
        assert headers["correlation_id"] == "corr-42"
        assert json.loads(message.value()) == row.payload
        by_key.setdefault(message.key(), []).append(row.position)
    for key, positions in by_key.items():
        assert positions == sorted(positions), f"events of {key!r} arrived out of order"
        prices = [
            rows_by_pos.payload["price"]["amount"]
            for rows_by_pos in sorted(
                (r for r in rows.values() if r.aggregateid.encode() == key), key=lambda r: r.position
            )[1:]
        ]
        assert prices == [f"{c}.00" for c in range(2, 12)]


def test_only_one_relay_per_context_at_a_time(kafka_ns):
    catalog.product_add(sku="SKU-L", name="Locked", price=Money.of("1.00", "USD"))
    other = connections.create_connection("catalog")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [relay_lock_key("catalog")])
            result = relay_batch(context="catalog", producer=shared_producer(), batch_size=10)
            assert result.locked_out and result.published == 0
            cursor.execute("ROLLBACK")
    finally:
        other.close()
    assert relay().published == 1


def test_commit_hook_kicks_the_relay_through_celery(kafka_ns, settings):
    settings.OUTBOX_RELAY_LISTEN = False  # decision 21's kicks (tests/integration/test_listening_relay.py: the default)
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = context_queue("catalog")
    client.delete(queue, f"orderflow:relay-kick:{kafka_ns}:catalog")
    catalog.product_add(sku="SKU-K1", name="Kicked", price=Money.of("1.00", "USD"))
    catalog.product_add(sku="SKU-K2", name="Kicked again", price=Money.of("1.00", "USD"))
    # One task queued for both commits: the second found a run already queued.
    assert queued_relay_tasks(client, "catalog") == 1
    client.delete(queue)


def test_purge_keeps_unpublished_and_recent_rows(kafka_ns):
    from datetime import timedelta

    from django.utils import timezone

    for n in range(3):
        catalog.product_add(sku=f"SKU-P{n}", name="p", price=Money.of("1.00", "USD"))
    relay()
    catalog.product_add(sku="SKU-P9", name="pending", price=Money.of("1.00", "USD"))
    old = timezone.now() - timedelta(days=30)
    OutboxEvent.objects.using("catalog").filter(aggregateid__in=["SKU-P0", "SKU-P1"]).update(published_at=old)
    assert purge_published(context="catalog", older_than=timezone.now() - timedelta(days=7)) == 2
    assert sorted(OutboxEvent.objects.using("catalog").values_list("aggregateid", flat=True)) == ["SKU-P2", "SKU-P9"]


def test_a_consumer_process_relays_its_own_outbox_right_after_commit(kafka_ns, settings):
    settings.OUTBOX_RELAY_LISTEN = False  # decision 21's kicks (tests/integration/test_listening_relay.py: the default)
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(context_queue("catalog"), f"orderflow:relay-kick:{kafka_ns}:catalog")
    with outbox.inline_relay("catalog"):
        catalog.product_add(sku="SKU-IN1", name="Inline", price=Money.of("1.00", "USD"))
    # Published by the commit hook itself: no worker ran, none was asked to.
    assert OutboxEvent.objects.using("catalog").get(aggregateid="SKU-IN1").published_at is not None
    assert queued_relay_tasks(client, "catalog") == 0
    (message,) = read_topic(topic_name("catalog.product"), expect=1, timeout=8, settle=1)
    assert message.key() == b"SKU-IN1"
    # Outside the block the commit hook queues a worker's run as before.
    catalog.product_add(sku="SKU-IN2", name="Queued", price=Money.of("1.00", "USD"))
    assert OutboxEvent.objects.using("catalog").get(aggregateid="SKU-IN2").published_at is None
    assert queued_relay_tasks(client, "catalog") == 1
    client.delete(context_queue("catalog"))


class _HeldProducer:
    """The real shared producer, except that `flush` waits until the test lets it go: a relay run
    caught in the middle, holding its context's lock."""

    def __init__(self) -> None:
        self.real = shared_producer()
        self.flushing = threading.Event()
        self.release = threading.Event()

    def produce(self, *args, **kwargs):
        return self.real.produce(*args, **kwargs)

    def poll(self, timeout: float = 0):
        return self.real.poll(timeout)

    def flush(self, timeout: float = -1):
        self.flushing.set()
        assert self.release.wait(30)
        return self.real.flush(timeout)


@contextmanager
def _a_run_holding_the_lock(monkeypatch) -> Iterator[None]:
    """Within this block another thread's `relay_with_handover` run of catalog holds the lock,
    caught in its flush with what was committed before the block; after it, the run finishes."""
    held = _HeldProducer()
    monkeypatch.setattr(tasks, "shared_producer", lambda: held)

    def hold() -> None:
        try:
            tasks.relay_with_handover(context="catalog", max_seconds=30)
        finally:
            connections.close_all()  # this thread's own connections, or the test database stays in use

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.flushing.wait(10)  # the holder read what was committed and holds the lock
        monkeypatch.setattr(tasks, "shared_producer", shared_producer)
        yield
    finally:
        held.release.set()
        holder.join(30)


def test_a_commit_during_another_relay_run_is_covered_by_that_run(kafka_ns, monkeypatch):
    """A locked-out attempt queues nothing and waits for nothing: the run holding the context
    sees that someone tried meanwhile and goes again."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    catalog.product_add(sku="SKU-H1", name="First", price=Money.of("1.00", "USD"))
    client.delete(context_queue("catalog"), f"orderflow:relay-kick:{kafka_ns}:catalog")
    with _a_run_holding_the_lock(monkeypatch):  # holding SKU-H1
        with outbox.inline_relay("catalog"):
            catalog.product_add(sku="SKU-H2", name="During", price=Money.of("1.00", "USD"))
        assert OutboxEvent.objects.using("catalog").get(aggregateid="SKU-H2").published_at is None  # locked out
    rows = OutboxEvent.objects.using("catalog").filter(aggregateid__in=["SKU-H1", "SKU-H2"])
    assert all(row.published_at is not None for row in rows) and len(rows) == 2
    assert queued_relay_tasks(client, "catalog") == 0
    keys = [m.key() for m in read_topic(topic_name("catalog.product"), expect=3, timeout=8, settle=1)]
    assert keys.count(b"SKU-H1") == 1 and keys.count(b"SKU-H2") == 1


def test_a_listening_relay_counts_its_attempt_only_when_locked_out(kafka_ns, monkeypatch):
    """A listening relay's run skips the hand-over's Redis round trips, unless it could not take
    the lock: then it counts itself, and the run holding the context relays its row too."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    attempts = tasks._attempts_key("catalog")
    client.delete(attempts)
    catalog.product_add(sku="SKU-L1", name="Alone", price=Money.of("1.00", "USD"))
    assert tasks.relay_listened(context="catalog", max_seconds=10).published == 1
    assert client.get(attempts) is None  # uncontended: no count

    catalog.product_add(sku="SKU-L2", name="First", price=Money.of("1.00", "USD"))
    with _a_run_holding_the_lock(monkeypatch):  # holding SKU-L2
        catalog.product_add(sku="SKU-L3", name="During", price=Money.of("1.00", "USD"))
        result = tasks.relay_listened(context="catalog", max_seconds=10)
        assert result.locked_out and result.published == 0
        assert int(client.get(attempts)) == 2  # the holder's count and this one's
    rows = OutboxEvent.objects.using("catalog").filter(aggregateid__in=["SKU-L1", "SKU-L2", "SKU-L3"])
    assert len(rows) == 3 and all(row.published_at is not None for row in rows)
    keys = [m.key() for m in read_topic(topic_name("catalog.product"), expect=3, timeout=8, settle=1)]
    assert sorted(keys) == [b"SKU-L1", b"SKU-L2", b"SKU-L3"]


def _expected_headers(row: OutboxEvent, context: str) -> list[tuple[str, bytes]]:
    """The CloudEvents headers as defined before the relay built them in SQL: the row's values
    formatted in Python (`str(uuid)`, `datetime.isoformat()`, `str()` of every extra header)."""
    headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", str(row.event_id)),
        ("ce_type", row.type),
        ("ce_source", f"/orderflow/{context}"),
        ("ce_subject", row.aggregateid),
        ("ce_time", row.occurred_at.isoformat()),
        ("content-type", "application/json"),
        *((k, str(v)) for k, v in row.headers.items()),
    ]
    return [(k, v.encode()) for k, v in headers]


def test_headers_built_in_sql_equal_the_python_definition(kafka_ns):
    import uuid
    from datetime import UTC, datetime

    topic = topic_name("catalog.product")
    times = [
        datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),  # no microseconds: isoformat() leaves them out
        datetime(2026, 3, 1, 12, 0, 0, 120000, tzinfo=UTC),  # trailing zeros are kept
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 7, 4, 9, 5, 7, 1, tzinfo=UTC),
    ]
    extras = [{}, {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}, {"n": 5, "flag": True}, {"é": "ü ∑"}]
    for n, (occurred_at, extra) in enumerate(zip(times, extras, strict=True)):
        OutboxEvent.objects.using("catalog").create(
            event_id=uuid.uuid4(),
            aggregatetype="product",
            aggregateid=f"SKU-H{n}",
            type="orderflow.catalog.ProductAdded.v1",
            payload={"sku": f"SKU-H{n}", "name": "ß"},
            topic=topic,
            headers=extra,
            occurred_at=occurred_at,
        )
    assert relay().published == len(times)
    rows = {str(r.event_id): r for r in OutboxEvent.objects.using("catalog").all()}
    messages = read_topic(topic, expect=len(times))
    assert len(messages) == len(times)
    for message in messages:
        row = rows[dict(message.headers())["ce_id"].decode()]
        assert message.headers() == _expected_headers(row, "catalog")
        assert message.key() == row.aggregateid.encode()
        assert json.loads(message.value()) == row.payload

"""Chaos: infrastructure faults under the messaging backbone, on real components.

Real PostgreSQL, a real Tansu broker (the test broker, or a private one started and stopped here),
real `manage.py` subprocesses wherever a process dies. No mocks. Every test ends with the
backbone's guarantees:

- every committed outbox row is published at least once (`published_at` set);
- a real consumer applies each event exactly once: one inbox row per event id, and the consuming
  context's state is what applying each event once gives;
- per aggregate, the topic keeps outbox position order. Precisely: for every key, the sequence of
  FIRST occurrences of the event ids on the topic equals the aggregate's outbox positions in
  increasing order (every row present, none overtaking an earlier one); a re-published duplicate
  may follow later (the inbox drops it). Where nothing can cause a duplicate, the sequence must
  equal position order exactly.

Faults: (1) relay crash after the broker's acknowledgement, before marking rows published;
(2) crash between the business commit and any relay or kick; (3) the broker down for longer than
the producer's retry window, then replaced by a fresh (memory-only) broker; (4) PostgreSQL
backends terminated under a consumer and under the relay; (5) an outbox position taken by a
transaction that commits after a later one; (6) two relays draining one outbox at once; (7) two
consumers in one group, a rebalance mid-stream and one member SIGKILLed; (8) an unpublished row
locked by another transaction while the relay runs.

Three of these found relay bugs, now fixed and kept as regression tests: a long-lived idempotent
producer that never recovered after the broker was replaced; a failed row "parked" until a time
already past (the transaction's start); and `SKIP LOCKED` letting an aggregate's later row
overtake one another transaction had locked.

Every consumer here uses a group id of its own, so a SIGKILLed member of another test's group
can never stall these.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition
from django.conf import settings as django_settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections, transaction
from django.utils import timezone

import contracts.catalog as catalog_events
import contracts.orders as order_events
from contexts.catalog import services as catalog
from contexts.catalog.models import OutboxEvent as CatalogOutbox
from contexts.catalog.models import Product
from contexts.inventory.handlers import on_order_placed
from contexts.inventory.models import InboxEvent as InventoryInbox
from contexts.inventory.models import OutboxEvent as InventoryOutbox
from contexts.inventory.models import Reservation, StockAdjustment, StockItem
from contexts.orders.models import InboxEvent as OrdersInbox
from contexts.orders.models import ProductPrice
from orderflow.domain import Money
from orderflow.messaging import outbox
from orderflow.messaging.consumer import ContextConsumer
from orderflow.messaging.envelope import Envelope
from orderflow.messaging.kafka import base_config, producer_config, reset_shared_producer, shared_producer, topic_name
from orderflow.messaging.management.commands.create_topics import create_topics
from orderflow.messaging.relay import relay_batch, relay_outbox
from orderflow.messaging.tasks import relay_outbox as relay_task
from orderflow.stack.components import free_port, start_kafka
from tests.fixtures.kafka import produce
from tests.fixtures.processes import ROOT, manage, pg_connect
from tests.fixtures.threads import Worker

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(databases="__all__", transaction=True)]

PRODUCT_TOPIC = "catalog.product"
ORDER_TOPIC = "orders.order"


@pytest.fixture(autouse=True)
def _show_stack_log_on_failure():
    """Overrides tests/chaos/conftest.py's autouse fixture of the same name: it needs the chaos
    stack (a whole OrderFlow stack per module), and these tests start only what they break."""
    yield


# --- helpers -------------------------------------------------------------------------------------


def eventually(check: Callable[[], bool], *, timeout: float, interval: float = 0.05, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {message}")
        time.sleep(interval)


def group(context: str) -> str:
    return f"chaos-{context}-{uuid.uuid4().hex[:8]}"


def database(alias: str) -> str:
    return connections[alias].settings_dict["NAME"]


def price(amount: int) -> dict[str, str]:
    return Money.of(f"{amount}.00", "USD").to_dict()


def dispose(producer: Producer | None) -> None:
    """Drop whatever a producer still holds and destroy it (no reconnect attempts afterwards)."""
    if producer is not None:
        try:
            producer.purge()
            producer.flush(1)
        except KafkaException:
            pass  # a producer in a fatal state
        producer.close()


def record_price_history(skus: list[str], changes: int) -> None:
    """Through `outbox.record` (contract-validated), in one transaction: ProductAdded at 1.00 for
    every sku, then `changes` rounds of ProductPriceChanged (round n sets n+1.00), interleaved
    across the skus so aggregates' rows alternate in position order."""
    with transaction.atomic(using="catalog"):
        for sku in skus:
            outbox.record(
                event_type=catalog_events.ProductAdded,
                aggregate_id=sku,
                data={"sku": sku, "name": sku, "price": price(1), "active": True},
            )
        for n in range(1, changes + 1):
            for sku in skus:
                outbox.record(
                    event_type=catalog_events.ProductPriceChanged,
                    aggregate_id=sku,
                    data={"sku": sku, "price": price(n + 1), "previous_price": price(n)},
                )


def add_products_with_price_changes(skus: list[str], changes: int) -> None:
    """The same history through the catalog's real services, one transaction per use case."""
    for sku in skus:
        catalog.product_add(sku=sku, name=sku, price=Money.of("1.00", "USD"))
    for n in range(1, changes + 1):
        for sku in skus:
            catalog.product_update(sku=sku, price=Money.of(f"{n + 1}.00", "USD"))


def outbox_rows(model, alias: str, **filters) -> list:
    return list(model.objects.using(alias).filter(**filters).order_by("position"))


def unpublished(model, alias: str) -> int:
    return model.objects.using(alias).filter(published_at__isnull=True).count()


def read_all(topic: str, *, timeout: float = 30.0) -> list[Message]:
    """Every record on `topic` from the beginning up to its high watermarks as of now (assigned
    partitions, no group join): exact, with nothing left to chance by a settle time."""
    consumer = Consumer(
        {
            **base_config(),
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        last = dict.fromkeys(ends, -1)
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while any(last[p] < ends[p] - 1 for p in ends):
            assert time.monotonic() < deadline, f"read {len(messages)} record(s) of {topic}, ends {ends}, at {last}"
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is None:
                    messages.append(message)
                    last[message.partition()] = message.offset()
        return messages
    finally:
        consumer.close()


def ce_id(message: Message) -> str:
    return dict(message.headers())["ce_id"].decode()


def topic_positions(messages: list[Message], rows: list) -> dict[str, list[int]]:
    """Per key, the outbox positions of the records in topic (partition) order."""
    by_id = {str(r.event_id): r for r in rows}
    seen: dict[str, list[int]] = defaultdict(list)
    for message in messages:
        row = by_id.get(ce_id(message))
        assert row is not None, f"{ce_id(message)} on the topic is no committed outbox row"
        assert message.key().decode() == row.aggregateid
        seen[row.aggregateid].append(row.position)
    return seen


def expected_positions(rows: list) -> dict[str, list[int]]:
    expected: dict[str, list[int]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.position):
        expected[row.aggregateid].append(row.position)
    return expected


def assert_topic_order(messages: list[Message], rows: list, *, exact: bool) -> int:
    """Per key: first occurrences == the aggregate's positions in increasing order (every row
    present, none ahead of an earlier one). `exact`: and no duplicate at all. Returns the number
    of duplicate records."""
    seen = topic_positions(messages, rows)
    expected = expected_positions(rows)
    assert set(seen) == set(expected), f"keys missing from the topic: {set(expected) - set(seen)}"
    for key, positions in expected.items():
        firsts = list(dict.fromkeys(seen[key]))
        assert firsts == positions, f"{key}: first occurrences {firsts} != outbox positions {positions}"
        if exact:
            assert seen[key] == positions, f"{key}: {seen[key]} != {positions} (duplicates or reordering)"
    return len(messages) - len(rows)


def assert_applied_once(inbox, alias: str, consumer: str, event_ids) -> None:
    ids = list(inbox.objects.using(alias).filter(consumer=consumer).values_list("event_id", flat=True))
    assert len(ids) == len(set(ids)), "an event has two inbox rows"
    assert sorted(ids) == sorted(str(e) for e in event_ids), "inbox rows != the events"


def assert_replica_prices(skus: list[str], amount: str) -> None:
    replica = {p.sku: (str(p.price_amount), p.price_currency) for p in ProductPrice.objects.using("orders")}
    assert {sku: replica.get(sku) for sku in skus} == {sku: (amount, "USD") for sku in skus}


def drain(context: str, *, idle: float = 2.0, **kwargs) -> ContextConsumer:
    """A real consumer of `context` (a fresh group) that stops once idle."""
    consumer = ContextConsumer(context, group_id=group(context), **kwargs)
    consumer.run(idle_exit_after=idle)
    return consumer


def order_placed(sku: str, quantity: int) -> Envelope:
    order_id = uuid.uuid4()
    return Envelope(
        id=str(uuid.uuid4()),
        type=order_events.OrderPlaced.type,
        source="/orderflow/orders",
        subject=str(order_id),
        time=datetime.now(UTC),
        data={
            "order_id": str(order_id),
            "customer_id": str(uuid.uuid4()),
            "lines": [{"sku": sku, "quantity": quantity, "unit_price": price(1)}],
            "total": price(quantity),
            "card_token": "tok_visa",
        },
    )


def send_orders(envelopes: list[Envelope]) -> None:
    produce(topic_name(ORDER_TOPIC), [(e.subject.encode(), e.value(), e.headers()) for e in envelopes])


def expected_reserved(envelopes: list[Envelope]) -> dict[str, int]:
    reserved: dict[str, int] = defaultdict(int)
    for e in envelopes:
        for line in e.data["lines"]:
            reserved[line["sku"]] += line["quantity"]
    return dict(reserved)


def assert_reservations(envelopes: list[Envelope], skus: list[str]) -> None:
    """Inventory's state after applying each OrderPlaced once: one reservation and one
    StockReserved per order, reserved = the sum of the orders' quantities per sku."""
    order_ids = sorted(e.data["order_id"] for e in envelopes)
    assert sorted(str(r.order_id) for r in Reservation.objects.using("inventory")) == order_ids
    assert not Reservation.objects.using("inventory").exclude(status="RESERVED").exists()
    replies = InventoryOutbox.objects.using("inventory").filter(type="orderflow.inventory.StockReserved.v1")
    assert sorted(replies.values_list("aggregateid", flat=True)) == order_ids
    reserved = dict(StockItem.objects.using("inventory").filter(sku__in=skus).values_list("sku", "reserved"))
    assert reserved == {sku: expected_reserved(envelopes).get(sku, 0) for sku in skus}


def terminate_backends(monitor, dbname: str) -> int:
    """pg_terminate_backend every client connection to `dbname` except the monitor's own and the
    test thread's Django connection (if one is open). Returns how many were terminated."""
    keep = [monitor.execute("SELECT pg_backend_pid()").fetchone()[0]]
    for alias in connections:
        wrapper = connections[alias]
        if wrapper.connection is not None and wrapper.settings_dict["NAME"] == dbname:
            keep.append(wrapper.connection.info.backend_pid)
    rows = monitor.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND backend_type = 'client backend' AND NOT (pid = ANY(%s))",
        [dbname, keep],
    ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def transient_retries(caplog) -> int:
    return sum("transient failure, retrying" in r.getMessage() for r in caplog.records)


# --- 1. relay crash after the broker's acknowledgement -------------------------------------------


def test_relay_killed_after_broker_ack_republishes_and_the_consumer_applies_once(kafka_ns, test_db_env):
    skus = [f"SKU-ACK-{n}" for n in range(6)]
    add_products_with_price_changes(skus, changes=3)  # 6 ProductAdded + 18 ProductPriceChanged
    rows = outbox_rows(CatalogOutbox, "catalog")
    assert len(rows) == 24
    topic = topic_name(PRODUCT_TOPIC)

    crashed = manage(
        "relay_outbox", "catalog", env={**test_db_env, "ORDERFLOW_CRASH_AT": "relay_after_ack"}, check=False
    )
    assert crashed.returncode == 137, crashed.stderr
    assert "crashing at relay_after_ack" in crashed.stderr
    # The broker acknowledged every record, but the process died before marking the rows.
    assert unpublished(CatalogOutbox, "catalog") == 24
    assert_topic_order(read_all(topic), rows, exact=True)

    rerun = manage("relay_outbox", "catalog", env=test_db_env)
    assert "catalog: published 24, failed 0" in rerun.stdout
    assert unpublished(CatalogOutbox, "catalog") == 0
    messages = read_all(topic)
    assert len(messages) == 48  # every event twice: the whole batch went out again, in order
    seen = topic_positions(messages, rows)
    for key, positions in expected_positions(rows).items():
        assert seen[key] == positions + positions, key

    consumer = drain("orders")
    assert (consumer.applied, consumer.skipped) == (24, 24)
    assert_applied_once(OrdersInbox, "orders", consumer.name, [r.event_id for r in rows])
    assert_replica_prices(skus, "4.00")


# --- 2. crash between the business commit and the relay -------------------------------------------

CRASH_RIGHT_AFTER_COMMIT = """
import os
from django.db import transaction
from contexts.catalog import services
from orderflow.domain import Money

with transaction.atomic(using="catalog"):
    # Registered before the services' relay kicks, so it runs first: the process dies right
    # after COMMIT, before any kick and long before any relay.
    transaction.on_commit(lambda: os._exit(137), using="catalog")
    for n in range(5):
        services.product_add(sku=f"SKU-CRASH-{n}", name="Crash", price=Money.of("1.00", "USD"))
    for n in range(5):
        services.product_update(sku=f"SKU-CRASH-{n}", price=Money.of("2.00", "USD"))
raise SystemExit("not reached: the process should have died at commit")
"""


def test_crash_between_business_commit_and_relay_is_published_by_the_periodic_relay(kafka_ns, test_db_env):
    from orderflow.messaging.tasks import relay_outbox as periodic_relay

    crashed = manage("shell", "-c", CRASH_RIGHT_AFTER_COMMIT, env=test_db_env, check=False)
    assert crashed.returncode == 137, crashed.stdout + crashed.stderr
    skus = [f"SKU-CRASH-{n}" for n in range(5)]
    # The business change and its events committed; nothing relayed, not even kicked.
    assert sorted(Product.objects.using("catalog").values_list("sku", flat=True)) == skus
    rows = outbox_rows(CatalogOutbox, "catalog")
    assert len(rows) == 10 and all(r.published_at is None for r in rows)
    assert not redis.Redis.from_url(django_settings.REDIS_URL).exists(f"orderflow:relay-kick:{kafka_ns}:catalog")

    assert periodic_relay("catalog") == {"published": 10, "failed": 0}  # what beat runs every second
    assert unpublished(CatalogOutbox, "catalog") == 0
    assert_topic_order(read_all(topic_name(PRODUCT_TOPIC)), rows, exact=True)

    # Inventory subscribes to ProductAdded only: one stock row per product, the rest skipped.
    consumer = drain("inventory")
    assert (consumer.applied, consumer.skipped) == (5, 5)
    added = [r.event_id for r in rows if r.type == catalog_events.ProductAdded.type]
    assert_applied_once(InventoryInbox, "inventory", consumer.name, added)
    stock = {s.sku: (s.on_hand, s.reserved) for s in StockItem.objects.using("inventory")}
    assert stock == dict.fromkeys(skus, (0, 0))


# --- 3. the broker down for longer than the producer's retry window --------------------------------


def broker_outage_then_back(settings, *, through_the_task: bool) -> None:
    """A private broker; the relay's producer connects to it and publishes; the broker stops; the
    relay fails (records time out after 3 s); a fresh broker comes up on the same address (no
    topics: memory-only); the relay runs again until everything is published.

    `through_the_task`: relay as beat does, with the Celery task and the process's long-lived
    shared producer (which must recover by itself); otherwise with a producer of the test's own,
    replaced after the outage as a restarted worker would."""
    port = free_port()
    brokers = [start_kafka(port)]
    producer = None
    settings.KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS = 3000

    def relay_once() -> tuple[int, int]:
        if through_the_task:
            result = relay_task("catalog")
            return result["published"], result["failed"]
        result = relay_outbox(context="catalog", producer=producer, batch_size=100)
        return result.published, result.failed

    try:
        settings.KAFKA_BOOTSTRAP_SERVERS = brokers[0].url
        reset_shared_producer()  # the shared producer must connect to this broker
        create_topics()
        producer = Producer(producer_config())
        # The producer has its idempotent producer id and metadata from the first broker.
        catalog.product_add(sku="SKU-CANARY", name="Canary", price=Money.of("1.00", "USD"))
        assert relay_once() == (1, 0)

        skus = [f"SKU-DOWN-{n}" for n in range(4)]
        add_products_with_price_changes(skus, changes=3)
        rows = outbox_rows(CatalogOutbox, "catalog", aggregateid__in=skus)
        assert len(rows) == 16

        brokers[0].stop()
        assert relay_once() == (0, 16)
        for row in outbox_rows(CatalogOutbox, "catalog", aggregateid__in=skus):
            assert row.published_at is None, row  # nothing skipped, so per-aggregate order holds
            assert row.attempts == 1 and "_MSG_TIMED_OUT" in row.last_error, (row.attempts, row.last_error)
            assert row.next_attempt_at is not None, row  # parked with its aggregate

        brokers.append(start_kafka(port))
        create_topics()
        if not through_the_task:  # what a restarted worker process has
            dispose(producer)
            producer = Producer(producer_config())

        def relayed_everything() -> bool:  # beat, every so often, until the parked rows are due
            relay_once()
            return unpublished(CatalogOutbox, "catalog") == 0

        eventually(relayed_everything, timeout=20, interval=0.25, message="the parked rows relayed after the outage")
        assert_topic_order(read_all(topic_name(PRODUCT_TOPIC)), rows, exact=True)

        consumer = drain("orders")
        assert (consumer.applied, consumer.skipped) == (16, 0)
        assert_applied_once(OrdersInbox, "orders", consumer.name, [r.event_id for r in rows])
        assert_replica_prices(skus, "4.00")
    finally:
        dispose(producer)
        reset_shared_producer()
        for broker in brokers:
            broker.stop()


def test_broker_down_longer_than_the_retry_window_then_back(kafka_ns, settings):
    """The relay after the outage uses a new producer, as a restarted worker would."""
    broker_outage_then_back(settings, through_the_task=False)


def test_the_relay_task_recovers_its_long_lived_producer_after_the_broker_was_replaced(kafka_ns, settings):
    """A worker that lives through the outage: the relay task's shared producer is replaced after
    a run that got nothing acknowledged (or a fatal error), so the backlog drains by itself."""
    broker_outage_then_back(settings, through_the_task=True)


def test_a_row_that_timed_out_is_parked_from_the_moment_it_failed(kafka_ns):
    catalog.product_add(sku="SKU-PARK", name="Park", price=Money.of("1.00", "USD"))
    # Nothing listens on this port: every record times out after message.timeout.ms.
    unreachable = Producer(
        producer_config(**{"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 2500})
    )
    try:
        failed = relay_batch(context="catalog", producer=unreachable, batch_size=10)
        after_failure = timezone.now()
        assert (failed.published, failed.failed) == (0, 1)
        row = CatalogOutbox.objects.using("catalog").get()
        assert row.attempts == 1 and "_MSG_TIMED_OUT" in row.last_error
        # First failure: 2^0 = 1 s of backoff, counted from the failure.
        assert row.next_attempt_at > after_failure, f"parked until {row.next_attempt_at}, failed at {after_failure}"
        assert relay_batch(context="catalog", producer=unreachable, batch_size=10).selected == 0
    finally:
        dispose(unreachable)


# --- 4. PostgreSQL connections killed under a consumer and under the relay --------------------------


def test_consumer_survives_killed_database_connections(kafka_ns, caplog):
    caplog.set_level(logging.WARNING, logger="orderflow.messaging.consumer")
    skus = [f"SKU-PG-{n:02d}" for n in range(20)]
    events = [order_placed(skus[i % len(skus)], 1 + i % 3) for i in range(600)]
    StockItem.objects.using("inventory").bulk_create([StockItem(sku=sku, on_hand=10_000) for sku in skus])
    send_orders(events)

    def audited(event) -> None:
        # The real handler, plus an effect that is NOT idempotent: applied twice would show.
        on_order_placed(event)
        StockAdjustment.objects.using("inventory").create(sku="AUDIT", delta=0, reason=event.id, on_hand_after=0)

    name = group("inventory")
    # Small batches: one commit per batch is quick, and the kills must land mid-stream.
    consumer = ContextConsumer(
        "inventory", group_id=name, handlers={order_events.OrderPlaced.type: audited}, batch_size=5
    )
    worker = Worker(lambda: consumer.run(idle_exit_after=10.0), "consumer")
    worker.start()
    dbname = database("inventory")
    connections["inventory"].close()  # the test's own connection is no victim
    inbox = InventoryInbox._meta.db_table
    kills = 0
    try:
        with pg_connect(dbname) as monitor:

            def applied() -> int:
                return monitor.execute(f"SELECT count(*) FROM {inbox} WHERE consumer = %s", [name]).fetchone()[0]

            for threshold in (40, 120, 220, 320, 420, 520):
                eventually(
                    lambda t=threshold: applied() >= t, timeout=60, interval=0.01, message=f"{threshold} applied"
                )
                kills += terminate_backends(monitor, dbname)
            eventually(lambda: applied() >= len(events), timeout=60, message="every event applied")
    finally:
        consumer.stop()
        worker.finish(30)

    assert kills >= 4, f"only {kills} consumer connection(s) were terminated"
    assert transient_retries(caplog) >= 1
    assert_applied_once(InventoryInbox, "inventory", name, [e.id for e in events])
    audit = list(StockAdjustment.objects.using("inventory").filter(sku="AUDIT").values_list("reason", flat=True))
    assert sorted(audit) == sorted(e.id for e in events), "a handler's effect committed twice (or not at all)"
    assert_reservations(events, skus)
    print(
        f"consumer: {kills} backends terminated, {transient_retries(caplog)} transient retries, "
        f"applied {consumer.applied}, skipped {consumer.skipped}"
    )


def test_relay_survives_killed_database_connections(kafka_ns, settings, caplog):
    from orderflow.messaging.tasks import relay_outbox as periodic_relay

    skus = [f"SKU-RK-{n:02d}" for n in range(12)]
    record_price_history(skus, changes=49)  # 600 rows, 50 per aggregate
    rows = outbox_rows(CatalogOutbox, "catalog")
    assert len(rows) == 600
    settings.OUTBOX_RELAY_BATCH_SIZE = 20  # many short batches for the kills to land in
    stop, failures = threading.Event(), []

    def beat() -> None:
        while not stop.is_set():
            close_old_connections()  # as Celery's Django fixup does around every task
            try:
                periodic_relay("catalog")
            except (OperationalError, InterfaceError) as exc:  # the task fails; beat runs it again
                failures.append(exc)
            time.sleep(0.02)

    worker = Worker(beat, "relay")
    dbname = database("catalog")
    connections["catalog"].close()
    kills = 0
    worker.start()
    try:
        with pg_connect(dbname) as monitor:
            table = CatalogOutbox._meta.db_table

            def published() -> int:
                query = f"SELECT count(*) FROM {table} WHERE published_at IS NOT NULL"
                return monitor.execute(query).fetchone()[0]

            for threshold in (40, 140, 240, 340, 440, 540):
                eventually(
                    lambda t=threshold: published() >= t, timeout=60, interval=0.005, message=f"{threshold} published"
                )
                kills += terminate_backends(monitor, dbname)
            eventually(lambda: published() == len(rows), timeout=60, message="every row published")
    finally:
        stop.set()
        worker.finish(30)

    assert kills >= 4, f"only {kills} relay connection(s) were terminated"
    assert failures, "no relay run was interrupted"
    assert unpublished(CatalogOutbox, "catalog") == 0
    duplicates = assert_topic_order(read_all(topic_name(PRODUCT_TOPIC)), rows, exact=False)

    consumer = drain("orders")
    assert consumer.applied == len(rows) and consumer.skipped == duplicates
    assert_applied_once(OrdersInbox, "orders", consumer.name, [r.event_id for r in rows])
    assert_replica_prices(skus, "50.00")
    print(f"relay: {kills} backends terminated, {len(failures)} interrupted runs, {duplicates} duplicates")


# --- 5. an outbox position committed after a later one --------------------------------------------


def test_position_taken_first_and_committed_last_is_still_published(kafka_ns):
    taken: queue.Queue[int] = queue.Queue()
    release = threading.Event()

    def slow_transaction() -> None:
        with transaction.atomic(using="catalog"):
            catalog.product_add(sku="SKU-EARLY", name="Early", price=Money.of("1.00", "USD"))
            taken.put(CatalogOutbox.objects.using("catalog").get(aggregateid="SKU-EARLY").position)
            assert release.wait(30)

    writer = Worker(slow_transaction, "slow-writer")
    writer.start()
    try:
        early = taken.get(timeout=30)
        catalog.product_add(sku="SKU-LATE", name="Late", price=Money.of("1.00", "USD"))
        late = CatalogOutbox.objects.using("catalog").get(aggregateid="SKU-LATE")
        assert late.position > early

        first = relay_outbox(context="catalog", producer=shared_producer(), batch_size=50)
        assert first.published == 1  # only the committed (higher) position is visible
        assert [r.aggregateid for r in outbox_rows(CatalogOutbox, "catalog")] == ["SKU-LATE"]
    finally:
        release.set()
        writer.finish(30)

    second = relay_outbox(context="catalog", producer=shared_producer(), batch_size=50)
    assert second.published == 1  # the lower position, committed last: no high-water mark skips it
    rows = outbox_rows(CatalogOutbox, "catalog")
    assert [(r.position, r.aggregateid) for r in rows] == [(early, "SKU-EARLY"), (late.position, "SKU-LATE")]
    assert unpublished(CatalogOutbox, "catalog") == 0
    assert_topic_order(read_all(topic_name(PRODUCT_TOPIC)), rows, exact=True)

    consumer = drain("orders")
    assert (consumer.applied, consumer.skipped) == (2, 0)
    assert_applied_once(OrdersInbox, "orders", consumer.name, [r.event_id for r in rows])
    assert_replica_prices(["SKU-EARLY", "SKU-LATE"], "1.00")


# --- 6. two relays at once ----------------------------------------------------------------------


def test_two_relays_at_once_lose_nothing_and_keep_per_aggregate_order(kafka_ns):
    skus = [f"SKU-2R-{n:02d}" for n in range(30)]
    record_price_history(skus, changes=99)  # 3,000 rows, 100 per aggregate, interleaved
    rows = outbox_rows(CatalogOutbox, "catalog")
    assert len(rows) == 3000
    stats = {name: {"published": 0, "batches": 0, "locked_out": 0} for name in ("a", "b")}

    def relay_until_drained(name: str) -> None:
        producer = Producer(producer_config())  # one per relay, as in two worker processes
        rng = random.Random(name)
        while unpublished(CatalogOutbox, "catalog"):
            # One batch per run (max_seconds=0), then yield: the two relays interleave batch by
            # batch instead of one of them winning every advisory lock.
            result = relay_outbox(context="catalog", producer=producer, batch_size=100, max_seconds=0)
            stats[name]["published"] += result.published
            stats[name]["batches"] += result.batches
            stats[name]["locked_out"] += result.locked_out
            time.sleep(rng.uniform(0, 0.004))
        assert producer.flush(10) == 0
        dispose(producer)

    relays = [Worker(lambda n=name: relay_until_drained(n), f"relay-{name}") for name in stats]
    for relay in relays:
        relay.start()
    for relay in relays:
        relay.finish(120)

    assert unpublished(CatalogOutbox, "catalog") == 0
    assert sum(s["published"] for s in stats.values()) == 3000, stats  # each row marked once
    assert all(s["published"] > 0 for s in stats.values()), stats  # both really relayed
    assert sum(s["locked_out"] for s in stats.values()) > 0, stats  # ... at the same time
    # First occurrences per key in position order, and (nothing crashed) no duplicate at all.
    assert assert_topic_order(read_all(topic_name(PRODUCT_TOPIC)), rows, exact=True) == 0

    consumer = drain("orders")
    assert (consumer.applied, consumer.skipped) == (3000, 0)
    assert_applied_once(OrdersInbox, "orders", consumer.name, [r.event_id for r in rows])
    assert_replica_prices(skus, "100.00")
    print(f"two relays: {stats}")


# --- 7. two consumers in one group, rebalance mid-stream -------------------------------------------


def test_rebalance_mid_stream_and_a_sigkilled_member_apply_every_event_once(kafka_ns, test_db_env, tmp_path):
    """A consumes; B joins mid-stream (a rebalance); A is SIGKILLed mid-stream (no drain, no final
    commit, no LeaveGroup); B finishes. On the Tansu broker B joins but is handed no partition while
    A is alive (a known Tansu limitation: the rebalance does not complete with a busy member), so B
    takes over A's partitions after A's session times out, from A's last committed offsets: what
    A applied since is replayed and must be dropped by the inbox.

    The stream arrives in three parts, so the test does not race the consumer's speed (A can apply
    the first part before B has even started): the first before A starts, the second once B is in
    the group, the last after A is killed — B has that much left to apply whatever A got through."""
    skus = [f"SKU-RB-{n:02d}" for n in range(40)]
    events = [order_placed(skus[i % len(skus)], 1 + i % 2) for i in range(1600)]
    StockItem.objects.using("inventory").bulk_create([StockItem(sku=sku, on_hand=10_000) for sku in skus])
    send_orders(events[:1000])
    name = group("inventory")

    def start(member: str) -> tuple[subprocess.Popen, object]:
        log = open(tmp_path / f"{member}.log", "w")  # closed in the test's finally
        process = subprocess.Popen(
            [sys.executable, "manage.py", "consume", "inventory", "--group", name],
            cwd=ROOT,
            env=test_db_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return process, log

    def applied() -> int:
        return InventoryInbox.objects.using("inventory").filter(consumer=name).count()

    a, a_log = start("a")
    b = b_log = None
    try:
        eventually(lambda: applied() >= 250, timeout=60, interval=0.1, message="A applying")
        b, b_log = start("b")  # joins the group mid-stream: rebalance
        eventually(lambda: "subscribed to" in (tmp_path / "b.log").read_text(), timeout=60, message="B joining")
        send_orders(events[1000:1300])
        # Killed right after applying the second part: its offsets are most likely not committed
        # yet (auto-commit runs every few seconds), so B replays them.
        eventually(lambda: applied() >= 1300, timeout=60, interval=0.02, message="the stream going on")
        killed_at = datetime.now()  # local time, as in the consumers' log lines
        a.send_signal(signal.SIGKILL)  # no drain, no offset commit, no LeaveGroup
        assert a.wait(10) == -signal.SIGKILL
        at_kill = applied()
        send_orders(events[1300:])
        eventually(lambda: applied() >= len(events), timeout=90, interval=0.1, message="B finishing the stream")
        b.send_signal(signal.SIGTERM)
        assert b.wait(20) == 0
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        for log in (a_log, b_log):
            if log is not None:
                log.close()

    b_output = (tmp_path / "b.log").read_text()
    stopped = re.search(r"stopped \(applied (\d+), skipped (\d+)", b_output)
    assert stopped, b_output[-3000:]
    b_applied, b_skipped = int(stopped[1]), int(stopped[2])
    assert 0 < b_applied < len(events), (b_applied, at_kill)  # both members applied part of the stream
    assert_applied_once(InventoryInbox, "inventory", name, [e.id for e in events])
    assert_reservations(events, skus)
    assigned = re.findall(r"^(\S+ \S+) INFO .* assigned (\d+) partition", b_output, re.MULTILINE)
    before_kill = [n for at, n in assigned if datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f") < killed_at]
    print(
        f"rebalance: {at_kill} applied when A was killed; B applied {b_applied}, skipped {b_skipped} replays; "
        f"B's assignments before the kill: {before_kill}, all: {[n for _, n in assigned]}"
    )


# --- 8. an unpublished row locked by another transaction --------------------------------------------


def test_a_row_locked_by_another_transaction_is_not_overtaken_by_its_aggregate(kafka_ns):
    catalog.product_add(sku="SKU-LOCKED", name="Locked", price=Money.of("1.00", "USD"))
    catalog.product_update(sku="SKU-LOCKED", price=Money.of("2.00", "USD"))
    rows = outbox_rows(CatalogOutbox, "catalog")
    table = CatalogOutbox._meta.db_table
    with pg_connect(database("catalog")) as other, other.transaction():
        # What OutboxAdmin.retry_now runs, caught before its transaction ends.
        other.execute(
            f"UPDATE {table} SET attempts = 0, last_error = '', next_attempt_at = NULL WHERE position = %s",
            [rows[0].position],
        )
        relay_outbox(context="catalog", producer=shared_producer(), batch_size=50)
    relay_outbox(context="catalog", producer=shared_producer(), batch_size=50)
    assert unpublished(CatalogOutbox, "catalog") == 0
    assert_topic_order(read_all(topic_name(PRODUCT_TOPIC)), rows, exact=True)

    consumer = drain("orders")
    assert (consumer.applied, consumer.skipped) == (2, 0)
    assert_applied_once(OrdersInbox, "orders", consumer.name, [r.event_id for r in rows])
    assert_replica_prices(["SKU-LOCKED"], "2.00")

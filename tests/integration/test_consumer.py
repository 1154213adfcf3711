"""The inbox consumer on the real broker: duplicates, crashes between commit and offset, poison."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from contexts.inventory.models import InboxEvent, OutboxEvent, Reservation, StockItem
from orderflow.messaging.consumer import ContextConsumer
from orderflow.messaging.envelope import Envelope
from orderflow.messaging.kafka import dlq_topic, topic_name
from tests.fixtures.kafka import produce, read_topic
from tests.fixtures.processes import manage

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def order_placed(order_id: uuid.UUID, sku: str, quantity: int, event_id: str | None = None) -> Envelope:
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type="orderflow.orders.OrderPlaced.v1",
        source="/orderflow/orders",
        subject=str(order_id),
        time=datetime.now(UTC),
        data={
            "order_id": str(order_id),
            "customer_id": str(uuid.uuid4()),
            "lines": [{"sku": sku, "quantity": quantity, "unit_price": {"amount": "1.00", "currency": "USD"}}],
            "total": {"amount": f"{quantity}.00", "currency": "USD"},
            "card_token": "tok_visa",
        },
    )


def send(*envelopes: Envelope) -> None:
    produce(topic_name("orders.order"), [(e.subject.encode(), e.value(), e.headers()) for e in envelopes])


def consume_until_idle(**kwargs) -> ContextConsumer:
    consumer = ContextConsumer("inventory", config={"group.id": f"test-{uuid.uuid4().hex[:8]}"}, **kwargs)
    consumer.run(idle_exit_after=3.0)
    return consumer


def test_the_same_event_delivered_twice_has_one_effect(kafka_ns):
    StockItem.objects.using("inventory").create(sku="SKU-D", on_hand=10)
    order_id = uuid.uuid4()
    event = order_placed(order_id, "SKU-D", 3)
    send(event, event)
    consumer = consume_until_idle()
    assert (consumer.applied, consumer.skipped) == (1, 1)
    assert StockItem.objects.using("inventory").get(sku="SKU-D").reserved == 3
    assert Reservation.objects.using("inventory").get(order_id=order_id).status == "RESERVED"
    assert OutboxEvent.objects.using("inventory").filter(type="orderflow.inventory.StockReserved.v1").count() == 1
    assert InboxEvent.objects.using("inventory").filter(event_id=event.id).count() == 1


def test_reply_events_carry_the_causation_chain(kafka_ns):
    StockItem.objects.using("inventory").create(sku="SKU-T", on_hand=1)
    event = order_placed(uuid.uuid4(), "SKU-T", 5)
    event = replace(event, traceparent="00-" + "e" * 32 + "-" + "f" * 16 + "-01", correlation_id="corr-7")
    send(event)
    consume_until_idle()
    reply = OutboxEvent.objects.using("inventory").get()
    assert reply.type == "orderflow.inventory.StockReservationFailed.v1"
    assert reply.payload["reason"] == "out_of_stock"
    assert reply.headers["causation_id"] == event.id and reply.headers["correlation_id"] == "corr-7"
    assert reply.headers["traceparent"].startswith("00-" + "e" * 32)


def test_consumer_killed_after_db_commit_before_offset_commit_applies_nothing_twice(kafka_ns, test_db_env):
    StockItem.objects.using("inventory").create(sku="SKU-K", on_hand=10)
    orders = [uuid.uuid4() for _ in range(3)]
    send(*(order_placed(o, "SKU-K", 2) for o in orders))

    crashed = manage(
        "consume",
        "inventory",
        env={**test_db_env, "ORDERFLOW_CRASH_AT": "consumer_after_db_commit"},
        check=False,
        timeout=60,
    )
    assert crashed.returncode == 137, crashed.stderr
    assert "crashing at consumer_after_db_commit" in crashed.stderr
    committed = InboxEvent.objects.using("inventory").count()
    assert committed >= 1  # the first commit (one record, or the whole fetched batch) is durable

    # Restart: the uncommitted offsets replay those records; the inbox turns them into no-ops.
    run = ContextConsumer("inventory")  # same group as the crashed process
    run.run(idle_exit_after=3.0)
    assert (run.applied, run.skipped) == (3 - committed, committed)
    assert StockItem.objects.using("inventory").get(sku="SKU-K").reserved == 6
    assert Reservation.objects.using("inventory").count() == 3
    assert OutboxEvent.objects.using("inventory").count() == 3


def test_poison_message_is_dead_lettered_and_the_partition_moves_on(kafka_ns):
    StockItem.objects.using("inventory").create(sku="SKU-P", on_hand=10)
    good = order_placed(uuid.uuid4(), "SKU-P", 1)
    invalid = order_placed(uuid.uuid4(), "SKU-P", 1)
    invalid = replace(invalid, data={**invalid.data, "lines": []})  # violates the contract
    key = b"same-partition"
    produce(
        topic_name("orders.order"),
        [
            (
                key,
                b"{not json",
                [
                    ("ce_id", b"x1"),
                    ("ce_type", b"orderflow.orders.OrderPlaced.v1"),
                    ("ce_source", b"/t"),
                    ("ce_time", b"2026-01-01T00:00:00+00:00"),
                ],
            ),
            (key, invalid.value(), invalid.headers()),
            (key, good.value(), good.headers()),
        ],
    )
    consumer = consume_until_idle()
    assert (consumer.applied, consumer.dead_lettered) == (1, 2)
    assert StockItem.objects.using("inventory").get(sku="SKU-P").reserved == 1
    dead = read_topic(dlq_topic("inventory"), expect=2)
    reasons = [dict(m.headers())["dlq_error_message"].decode() for m in dead]
    assert "not JSON" in reasons[0] and "lines" in reasons[1]
    assert all(dict(m.headers())["dlq_original_topic"].decode() == topic_name("orders.order") for m in dead)


def test_unknown_version_of_a_subscribed_event_is_dead_lettered_foreign_types_skipped(kafka_ns):
    newer = order_placed(uuid.uuid4(), "SKU-X", 1)
    newer = replace(newer, type="orderflow.orders.OrderPlaced.v7")
    foreign = replace(newer, id=str(uuid.uuid4()), type="orderflow.orders.OrderGiftWrapped.v1")
    send(newer, foreign)
    consumer = consume_until_idle()
    assert (consumer.applied, consumer.dead_lettered, consumer.skipped) == (0, 1, 1)
    [dead] = read_topic(dlq_topic("inventory"), expect=1)
    assert "unknown version" in dict(dead.headers())["dlq_error_message"].decode()
    assert json.loads(dead.value()) == newer.data


def test_sigterm_drains_commits_and_leaves_the_group(kafka_ns, test_db_env):
    import signal
    import subprocess
    import sys
    import time

    from tests.fixtures.processes import ROOT

    StockItem.objects.using("inventory").create(sku="SKU-G", on_hand=5)
    first = order_placed(uuid.uuid4(), "SKU-G", 1)
    send(first)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "consume", "inventory"],
        cwd=ROOT,
        env=test_db_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while InboxEvent.objects.using("inventory").count() < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert InboxEvent.objects.using("inventory").count() == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
    log = process.stderr.read()
    assert "draining and leaving the group" in log and "stopped (applied 1" in log

    # The offset was committed on the way out: a new member of the group starts after the record,
    # and (having left the group) the old member's partitions are handed over at once.
    second = order_placed(uuid.uuid4(), "SKU-G", 1)
    send(second)
    started = time.monotonic()
    restarted = ContextConsumer("inventory")
    restarted.run(idle_exit_after=2.0)
    assert (restarted.applied, restarted.skipped) == (1, 0)
    assert time.monotonic() - started < 15
    assert StockItem.objects.using("inventory").get(sku="SKU-G").reserved == 2


def test_a_batch_over_several_partitions_commits_each_partitions_offset(kafka_ns):
    from confluent_kafka import Consumer, TopicPartition

    from orderflow.messaging.kafka import base_config

    StockItem.objects.using("inventory").create(sku="SKU-P", on_hand=100)
    send(*(order_placed(uuid.uuid4(), "SKU-P", 1) for _ in range(30)))  # 30 keys over 3 partitions
    group = f"test-{uuid.uuid4().hex[:8]}"
    first = ContextConsumer("inventory", config={"group.id": group})
    first.run(idle_exit_after=3.0)
    assert first.applied == 30

    topic = topic_name("orders.order")
    ends = {p: -1001 for p in range(3)}  # -1001: nothing committed (a partition that got no record)
    for message in read_topic(topic, expect=30):
        ends[message.partition()] = max(ends[message.partition()], message.offset() + 1)
    reader = Consumer({**base_config(), "group.id": group, "enable.auto.commit": False})
    try:
        committed = reader.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    finally:
        reader.close()
    assert sum(1 for end in ends.values() if end > 0) >= 2  # the records did span partitions
    assert {tp.partition: tp.offset for tp in committed} == ends

    # The group resumes after them: nothing redelivered, so nothing even reaches the inbox check.
    again = ContextConsumer("inventory", config={"group.id": group})
    again.run(idle_exit_after=3.0)
    assert (again.applied, again.skipped) == (0, 0)

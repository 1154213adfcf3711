"""Failure policy under injected faults: poison records, retries that keep per-aggregate order,
dead letters and their replay, parked outbox events, stale events, and the operator's status."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from confluent_kafka import Producer
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from contexts.catalog import services as catalog
from contexts.catalog.models import OutboxEvent as CatalogOutbox
from contexts.inventory.models import DeadLetter, InboxEvent, ParkedKey, StockItem
from contexts.orders import services as orders
from contexts.orders.models import ProductPrice
from orderflow.domain import Money
from orderflow.messaging.consumer import ContextConsumer, Event, subscriptions
from orderflow.messaging.envelope import Envelope
from orderflow.messaging.kafka import dlq_topic, producer_config, topic_name
from orderflow.messaging.relay import relay_outbox
from tests.fixtures.kafka import produce, read_topic
from tests.fixtures.threads import Worker

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(databases="__all__", transaction=True)]

PLACED = "orderflow.orders.OrderPlaced.v1"


def order_placed(order_id: uuid.UUID, sku: str, quantity: int = 1) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=PLACED,
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


def send(*envelopes: Envelope, key: bytes | None = None) -> None:
    produce(topic_name("orders.order"), [(key or e.subject.encode(), e.value(), e.headers()) for e in envelopes])


def drain(handlers=None, idle: float = 2.5) -> ContextConsumer:
    consumer = ContextConsumer("inventory", handlers=handlers)
    consumer.run(idle_exit_after=idle)
    return consumer


class Flaky:
    """The real inventory handler, failing for the orders told to fail (a handler bug that is
    fixed after some calls), and recording the order in which events were applied (committed).

    A failing record is called once in the consumer's batch attempt (rolled back) and then once
    per delivery when the batch is re-run record by record: `failures` counts those calls."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = dict(failures)
        self.applied: list[str] = []
        self.real = subscriptions("inventory")[PLACED]

    def __call__(self, event: Event) -> None:
        order_id = event.data["order_id"]
        if self.failures.get(order_id, 0) > 0:
            self.failures[order_id] -= 1
            raise RuntimeError(f"handler bug for {order_id}")
        self.real(event)
        transaction.on_commit(lambda: self.applied.append(order_id), using="inventory")


def test_retries_keep_one_aggregates_order_and_never_stall_the_others(kafka_ns):
    StockItem.objects.using("inventory").create(sku="SKU-R", on_hand=100)
    key = uuid.uuid4()  # one aggregate: three of its records share the key
    slow = [order_placed(uuid.uuid4(), "SKU-R") for _ in range(3)]
    others = [order_placed(uuid.uuid4(), "SKU-R") for _ in range(5)]
    flaky = Flaky({slow[0].data["order_id"]: 3})  # batch call, 1st delivery, 1st retry fail; 2nd retry works
    send(*slow, key=str(key).encode())
    send(*others)
    consumer = drain(handlers={PLACED: flaky})

    slow_ids = [e.data["order_id"] for e in slow]
    assert [o for o in flaky.applied if o in slow_ids] == slow_ids, "the aggregate's order held through retries"
    assert set(flaky.applied) == set(slow_ids) | {e.data["order_id"] for e in others}
    # The other aggregates did not wait for the retries of the failing one.
    assert flaky.applied.index(slow_ids[0]) > max(flaky.applied.index(e.data["order_id"]) for e in others)
    assert consumer.retried == 2 and consumer.dead_lettered == 0
    assert ParkedKey.objects.using("inventory").count() == 0
    assert StockItem.objects.using("inventory").get(sku="SKU-R").reserved == 8


def test_a_poison_record_is_dead_lettered_with_why_and_replay_has_one_effect(kafka_ns):
    StockItem.objects.using("inventory").create(sku="SKU-Q", on_hand=10)
    poison = order_placed(uuid.uuid4(), "SKU-Q", 2)
    after = order_placed(poison_order := uuid.UUID(poison.data["order_id"]), "SKU-Q", 1)  # same aggregate, later
    after = replace(after, data={**after.data, "order_id": str(uuid.uuid4())})
    flaky = Flaky({poison.data["order_id"]: 99})  # broken until "fixed"
    send(poison, after, key=str(poison_order).encode())
    consumer = drain(handlers={PLACED: flaky})
    assert consumer.dead_lettered == 1 and consumer.retried == 3  # 1 try + 3 retries, then the DLQ
    assert flaky.applied == [after.data["order_id"]]  # the queue moved on after the dead letter

    letter = DeadLetter.objects.using("inventory").get()
    assert (letter.event_id, letter.event_type, letter.attempts) == (poison.id, PLACED, 4)
    assert letter.error_class == "RuntimeError" and "handler bug" in letter.error_message
    [published] = read_topic(dlq_topic("inventory"), expect=1)
    headers = {k: v.decode() for k, v in published.headers()}
    assert headers["dlq_error_class"] == "RuntimeError" and headers["dlq_attempts"] == "4"
    assert headers["dlq_original_topic"] == topic_name("orders.order") and headers["ce_id"] == poison.id
    assert {"dlq_original_partition", "dlq_original_offset"} <= set(headers)

    # The operator fixes the cause and replays it twice: one effect.
    call_command("replay_dead_letters", "inventory", "--all", "--by", "ops@example.com")
    call_command("replay_dead_letters", "inventory", "--id", str(letter.id))
    consumer = drain()  # the real, fixed handler
    assert (consumer.applied, consumer.dead_lettered) == (1, 0)
    assert StockItem.objects.using("inventory").get(sku="SKU-Q").reserved == 3
    assert InboxEvent.objects.using("inventory").filter(event_id=poison.id).count() == 1
    letter.refresh_from_db(using="inventory")
    assert letter.replay_count == 2 and letter.replayed_by.startswith("cli:") and letter.replayed_at


def test_replay_refuses_unclear_requests():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="either --id"):
        call_command("replay_dead_letters", "inventory")
    with pytest.raises(CommandError, match="no dead letter with id 424242"):
        call_command("replay_dead_letters", "inventory", "--id", "424242")


def test_an_unpublishable_event_parks_only_its_aggregate(kafka_ns, settings):
    # A product whose ProductAdded is larger than this producer accepts, then a later price change.
    catalog.product_add(sku="SKU-HUGE", name="huge", description="y" * 3000, price=Money.of("1", "USD"))
    catalog.product_update(sku="SKU-HUGE", price=Money.of("2", "USD"))
    for n in range(5):
        catalog.product_add(sku=f"SKU-OK{n}", name="fine", price=Money.of("1", "USD"))
    small = Producer(producer_config(**{"message.max.bytes": 2500}))
    result = relay_outbox(context="catalog", producer=small, batch_size=3)
    assert result.failed == 1 and result.published == 5  # the five other products flowed on
    huge = CatalogOutbox.objects.using("catalog").filter(aggregateid="SKU-HUGE").order_by("position")
    assert [r.published_at for r in huge] == [None, None]
    assert huge[0].attempts == 1 and "MSG_SIZE_TOO_LARGE" in huge[0].last_error and huge[0].next_attempt_at
    assert huge[1].attempts == 0  # held back behind it, never sent ahead of it
    assert relay_outbox(context="catalog", producer=small, batch_size=3).published == 0  # still parked

    status = json.loads(_outbox_status("catalog"))[0]
    assert (status["backlog"], status["parked"], status["failed"]) == (2, 1, 1)

    # Fixed (a producer that accepts it) and resumed: both go out, in order.
    CatalogOutbox.objects.using("catalog").filter(aggregateid="SKU-HUGE").update(next_attempt_at=None)
    assert relay_outbox(context="catalog", producer=Producer(producer_config()), batch_size=10).published == 2
    messages = [m for m in read_topic(topic_name("catalog.product"), expect=7) if m.key() == b"SKU-HUGE"]
    assert [dict(m.headers())["ce_type"].decode().split(".")[2] for m in messages] == [
        "ProductAdded",
        "ProductPriceChanged",
    ]


def _outbox_status(context: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("outbox_status", context, "--json", stdout=out)
    return out.getvalue()


def test_outbox_status_table_names_every_column():
    from io import StringIO

    out = StringIO()
    call_command("outbox_status", stdout=out)
    header, *rows = out.getvalue().splitlines()
    assert header.split()[:2] == ["context", "backlog"] and "dead" in header and "parked" in header
    assert [r.split()[0] for r in rows] == ["customers", "catalog", "inventory", "orders", "payments", "notifications"]


def test_a_stale_event_for_an_aggregate_is_ignored():
    now = timezone.now()
    assert orders.product_price_upsert(sku="SKU-ST", price=Money.of("5", "USD"), active=True, occurred_at=now)
    stale = orders.product_price_upsert(sku="SKU-ST", price=Money.of("3", "USD"), occurred_at=now - timedelta(1))
    assert not stale
    assert ProductPrice.objects.using("orders").get(sku="SKU-ST").price_amount == Decimal("5.00")
    assert orders.product_price_upsert(sku="SKU-ST", price=Money.of("6", "USD"), occurred_at=now + timedelta(1))
    assert ProductPrice.objects.using("orders").get(sku="SKU-ST").price_amount == Decimal("6.00")


def test_retry_waits_do_not_block_the_consumer_loop(kafka_ns, settings):
    """While a record waits out a long retry delay its partition of the retry topic is paused,
    and fresh records keep being applied without waiting for it."""
    StockItem.objects.using("inventory").create(sku="SKU-W", on_hand=50)
    stuck = order_placed(uuid.uuid4(), "SKU-W")
    flaky = Flaky({stuck.data["order_id"]: 2})  # batch call and first delivery fail; the retry works
    consumer = ContextConsumer("inventory", handlers={PLACED: flaky}, retry_delays=[6.0])
    runner = Worker(lambda: consumer.run(idle_exit_after=30.0), "consumer")
    runner.start()
    try:
        send(stuck)
        deadline = time.monotonic() + 20
        while consumer.retried < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        fresh = [order_placed(uuid.uuid4(), "SKU-W") for _ in range(3)]
        sent_at = time.monotonic()
        send(*fresh)
        while len(flaky.applied) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        # (fresh records have their own keys, so they may come from different partitions)
        assert {e.data["order_id"] for e in fresh} == set(flaky.applied[:3])
        assert time.monotonic() - sent_at < 5.0, "fresh records waited for the delayed retry"
        while len(flaky.applied) < 4 and time.monotonic() < deadline + 10:
            time.sleep(0.1)
        assert flaky.applied[-1] == stuck.data["order_id"]
    finally:
        consumer.stop()
        runner.finish(20)

"""The relay claims a batch in chunks and produces one chunk while PostgreSQL claims the next: per
aggregate order, parking and lock waits must hold across chunk boundaries as within one chunk.

CLAIM_CHUNK is made tiny so that a small outbox spans several chunks of one batch.
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Message, Producer
from django.db import connections

from contexts.catalog import services as catalog
from contexts.catalog.models import OutboxEvent
from orderflow.domain import Money
from orderflow.messaging import relay
from orderflow.messaging.kafka import producer_config, shared_producer, topic_name
from tests.fixtures.kafka import read_topic
from tests.fixtures.processes import pg_connect

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

TOPIC = "catalog.product"


@pytest.fixture
def chunk_of_three(monkeypatch) -> int:
    monkeypatch.setattr(relay, "CLAIM_CHUNK", 3)
    return 3


def rows() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.using("catalog").order_by("position"))


def positions_by_key(messages: list[Message]) -> dict[str, list[int]]:
    """Per message key, the outbox positions of its messages in the order they are on the topic."""
    position = {str(r.event_id): r.position for r in rows()}
    seen: dict[str, list[int]] = {}
    for message in messages:
        seen.setdefault(message.key().decode(), []).append(position[dict(message.headers())["ce_id"].decode()])
    return seen


def test_a_batch_over_several_chunks_keeps_order_and_parks_a_failed_aggregate(kafka_ns, chunk_of_three):
    # 14 events; SKU-BIG's ProductAdded (position 5, in the second chunk) is larger than the small
    # producer accepts, and its price change (position 11, in the fourth chunk) must wait behind it.
    for n in range(4):
        catalog.product_add(sku=f"SKU-C{n}", name="fine", price=Money.of("1", "USD"))
    catalog.product_add(sku="SKU-BIG", name="big", description="y" * 3000, price=Money.of("1", "USD"))
    for cents in (2, 3):
        for n in range(4):
            catalog.product_update(sku=f"SKU-C{n}", price=Money.of(f"{cents}", "USD"))
        if cents == 3:
            catalog.product_update(sku="SKU-BIG", price=Money.of("2", "USD"))
    catalog.product_add(sku="SKU-LAST", name="last", price=Money.of("1", "USD"))
    everything = rows()
    assert len(everything) == 15
    small = Producer(producer_config(**{"message.max.bytes": 2500}))

    result = relay.relay_batch(context="catalog", producer=small, batch_size=100)

    assert (result.selected, result.published, result.failed, result.locked_out) == (15, 13, 1, False)
    big = [r for r in rows() if r.aggregateid == "SKU-BIG"]
    assert [r.published_at for r in big] == [None, None]
    assert big[0].attempts == 1 and "MSG_SIZE_TOO_LARGE" in big[0].last_error and big[0].next_attempt_at
    assert big[1].attempts == 0 and big[1].next_attempt_at is None  # held back, never sent ahead
    assert all(r.published_at for r in rows() if r.aggregateid != "SKU-BIG")
    messages = read_topic(topic_name(TOPIC), expect=13, settle=0.5)
    seen = positions_by_key(messages)
    assert "SKU-BIG" not in seen
    for key, positions in seen.items():
        assert positions == [r.position for r in everything if r.aggregateid == key], key

    # Parked: the next batches leave SKU-BIG out; once resumed with a producer that takes it,
    # both of its events follow, in order.
    assert relay.relay_outbox(context="catalog", producer=small, batch_size=100).published == 0
    OutboxEvent.objects.using("catalog").filter(aggregateid="SKU-BIG").update(next_attempt_at=None)
    assert relay.relay_outbox(context="catalog", producer=shared_producer(), batch_size=100).published == 2
    big = [m for m in read_topic(topic_name(TOPIC), expect=15) if m.key() == b"SKU-BIG"]
    assert [json.loads(m.value()).get("price", {}).get("amount") for m in big][1:] == ["2.00"]
    assert [dict(m.headers())["ce_type"].decode().split(".")[2] for m in big] == [
        "ProductAdded",
        "ProductPriceChanged",
    ]


def test_a_row_locked_in_a_later_chunk_ends_the_batch_before_it_without_resending(kafka_ns, chunk_of_three):
    for n in range(8):
        catalog.product_add(sku=f"SKU-K{n}", name="k", price=Money.of("1", "USD"))
    everything = rows()
    locked = everything[4]  # in the second chunk
    table = OutboxEvent._meta.db_table
    with pg_connect(connections["catalog"].settings_dict["NAME"]) as other, other.transaction():
        # What OutboxAdmin.retry_now runs, caught before its transaction ends.
        other.execute(f"UPDATE {table} SET attempts = 0 WHERE position = %s", [locked.position])
        result = relay.relay_batch(context="catalog", producer=shared_producer(), batch_size=100)
        # The first chunk went out and stays published; the second chunk waited for the lock,
        # timed out and was rolled back to its savepoint; nothing after it was claimed.
        assert (result.selected, result.published, result.failed, result.locked_out) == (3, 3, 0, True)
    assert [r.published_at is not None for r in rows()] == [True] * 3 + [False] * 5

    assert relay.relay_outbox(context="catalog", producer=shared_producer(), batch_size=100).published == 5
    messages = read_topic(topic_name(TOPIC), expect=8, settle=1)
    assert sorted(dict(m.headers())["ce_id"].decode() for m in messages) == sorted(
        str(r.event_id) for r in everything
    )  # every event exactly once: the first chunk was not sent again

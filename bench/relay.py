"""Relay benchmark: drain a pre-filled outbox of N OrderPlaced-sized events to Kafka with
OrderFlow's relay and with the naive reference relay, interleaved in one process (A B B A; with
the tuned reference too, A B C C B A).

The reference is the issue's textbook relay with a plain producer: librdkafka's defaults plus
`enable.idempotence` (the same delivery guarantee as OrderFlow's). A second variant, the same
reference relay with OrderFlow's producer settings (`relay_producer_config()`), shows how much of the
difference is producer tuning rather than relay design; quick runs leave it out. OrderFlow's relay
runs with its configured `OUTBOX_RELAY_BATCH_SIZE`, the reference with `LIMIT 1000`.

Each run gets the same freshly filled and vacuumed `orders` outbox (N rows, one order each, the
payload and headers an OrderPlaced carries) and a fresh topic with the configured partitions; the
run is timed from the first SELECT to the last committed UPDATE, then the rows marked published
and the messages on the topic (sum of partition watermarks) are both checked to equal N.

Run by `python -m bench` in its own process: `python -m bench.relay --n 100000 --out FILE`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings
from django.db import connections, transaction

from bench import profiling, task
from orderflow.messaging.kafka import base_config, relay_producer_config, shared_producer
from orderflow.messaging.outbox import outbox_model
from orderflow.messaging.relay import relay_outbox

CONTEXT = "orders"
ORDER_PLACED = "orderflow.orders.OrderPlaced.v1"
# The relay benchmark drains into a 6-partition topic, as production topics have (settings.base),
# whatever the embedded stack's default: the produce side of the comparison stays the same.
PARTITIONS = 6

# ~420 bytes of JSON, two lines: what contexts/orders/services.py records for a two-line order.
_FILL = """
INSERT INTO {table} (id, aggregatetype, aggregateid, type, payload, topic, headers, occurred_at, attempts, last_error)
SELECT e.event_id, 'order', e.order_id::text, %(type)s,
       jsonb_build_object(
         'order_id', e.order_id::text,
         'customer_id', e.customer_id::text,
         'lines', jsonb_build_array(
           jsonb_build_object('sku', 'SKU-' || lpad((e.g %% 100)::text, 4, '0'), 'quantity', 1 + e.g %% 3,
                              'unit_price', jsonb_build_object('amount', '19.99', 'currency', 'USD')),
           jsonb_build_object('sku', 'SKU-' || lpad((e.g %% 37)::text, 4, '0'), 'quantity', 1,
                              'unit_price', jsonb_build_object('amount', '5.00', 'currency', 'USD'))),
         'total', jsonb_build_object('amount', '64.97', 'currency', 'USD'),
         'card_token', 'tok_visa'),
       %(topic)s,
       jsonb_build_object(
         'traceparent', '00-' || md5(e.event_id::text) || '-' || left(md5(e.order_id::text), 16) || '-01',
         'correlation_id', e.customer_id::text),
       now(), 0, ''
FROM (SELECT g, gen_random_uuid() AS event_id, gen_random_uuid() AS order_id, gen_random_uuid() AS customer_id
      FROM generate_series(1, %(n)s) AS g) AS e
"""


def _table() -> str:
    return connections[CONTEXT].ops.quote_name(outbox_model(CONTEXT)._meta.db_table)


def fill(n: int, topic: str) -> float:
    """Empty the outbox and insert `n` unpublished rows for `topic`; VACUUM ANALYZE so every run
    starts from the same table state. Returns the seconds it took."""
    started = time.perf_counter()
    with connections[CONTEXT].cursor() as cursor:
        cursor.execute(f"TRUNCATE {_table()} RESTART IDENTITY")
        cursor.execute(_FILL.format(table=_table()), {"type": ORDER_PLACED, "topic": topic, "n": n})
        cursor.execute(f"VACUUM ANALYZE {_table()}")
    return time.perf_counter() - started


def unpublished() -> int:
    with connections[CONTEXT].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {_table()} WHERE published_at IS NULL")
        return cursor.fetchone()[0]


# --- the naive reference relay ---------------------------------------------------------------------------

_REF_SELECT = """
    SELECT position, id, aggregateid, type, payload::text, topic, headers::text, occurred_at
    FROM {table} WHERE published_at IS NULL ORDER BY position LIMIT %s FOR UPDATE SKIP LOCKED
"""


def reference_relay(*, context: str, producer: Producer, batch_size: int = 1000) -> int:
    """The textbook polling relay: per batch, one `SELECT … FOR UPDATE SKIP LOCKED LIMIT n`,
    produce every row, `flush()`, one `UPDATE … SET published_at`, commit. Returns rows published.

    It reads the JSON columns as text like OrderFlow's relay does and sends the same CloudEvents
    headers, so the two differ in how they relay, not in what they send.
    """
    table = connections[context].ops.quote_name(outbox_model(context)._meta.db_table)
    published = 0
    while True:
        with transaction.atomic(using=context), connections[context].cursor() as cursor:
            cursor.execute(_REF_SELECT.format(table=table), [batch_size])
            rows = cursor.fetchall()
            if not rows:
                return published
            for _pos, event_id, aggregate_id, ce_type, payload, topic, headers, occurred_at in rows:
                extra = json.loads(headers or "{}")
                producer.produce(
                    topic,
                    key=aggregate_id.encode(),
                    value=payload.encode(),
                    headers=[
                        ("ce_specversion", b"1.0"),
                        ("ce_id", str(event_id).encode()),
                        ("ce_type", ce_type.encode()),
                        ("ce_source", f"/orderflow/{context}".encode()),
                        ("ce_subject", aggregate_id.encode()),
                        ("ce_time", occurred_at.isoformat().encode()),
                        ("content-type", b"application/json"),
                        *((k, str(v).encode()) for k, v in extra.items()),
                    ],
                )
            if producer.flush(30):
                raise RuntimeError("reference relay: broker did not acknowledge the batch")
            cursor.execute(f"UPDATE {table} SET published_at = now() WHERE position = ANY(%s)", [[r[0] for r in rows]])
            published += len(rows)


# --- topics ---------------------------------------------------------------------------------------------------


def create_topic(topic: str) -> None:
    admin = AdminClient(base_config())
    partitions = PARTITIONS
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


def topic_count(topic: str, timeout: float = 120) -> tuple[int, int]:
    """(messages, distinct ce_id) on `topic`, read from the beginning of every partition up to its
    end. Partition EOF marks the end: this broker's ListOffsets answers are not reliable."""
    consumer = Consumer(
        {**base_config(), "group.id": "bench-count", "enable.auto.commit": False, "enable.partition.eof": True}
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        count, ids = 0, set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1):
                error = message.error()
                if error is None:
                    count += 1
                    ids.add(dict(message.headers() or []).get("ce_id"))
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
        return count, len(ids)
    finally:
        consumer.close()


def delete_topic(topic: str) -> None:
    admin = AdminClient(base_config())
    try:
        admin.delete_topics([topic], operation_timeout=10)[topic].result(15)
    except Exception:  # a broker without delete support: the namespace dies with the run
        pass


# --- one timed run ----------------------------------------------------------------------------------------------


def run_orderflow(n: int, batch_size: int) -> dict[str, Any]:
    producer = shared_producer()  # what the Celery task uses
    published = batches = 0
    deadline = time.monotonic() + 1800
    while published < n and time.monotonic() < deadline:
        result = relay_outbox(context=CONTEXT, producer=producer, batch_size=batch_size, max_seconds=3600)
        published += result.published
        batches += result.batches
        if result.failed or result.locked_out:
            raise RuntimeError(f"OrderFlow relay stopped early: {result}")
        if result.published == 0:
            break
    return {"published": published, "batches": batches}


def run_reference(batch_size: int, producer: Producer) -> dict[str, Any]:
    return {"published": reference_relay(context=CONTEXT, producer=producer, batch_size=batch_size)}


def plain_producer_config() -> dict:
    """The reference's producer: librdkafka's defaults, plus idempotence so both relays give the
    same delivery guarantee (no duplicates or reordering from the producer's own retries)."""
    return {**base_config(), "enable.idempotence": True}


def timed_run(kind: str, index: int, args: argparse.Namespace, producers: dict[str, Producer]) -> dict[str, Any]:
    topic = f"{settings.KAFKA_TOPIC_NAMESPACE}.relaybench.{index}-{kind}"
    create_topic(topic)
    fill_s = fill(args.n, topic)
    profile = None
    if args.profile_dir and kind not in schedule(args.runs, args.tuned_reference)[:index]:  # each kind's first run
        profile = Path(args.profile_dir) / f"relay-{kind}.raw"
    context = profiling.record(os.getpid(), profile) if profile else nullcontext()
    with context, task.Timer() as timer:
        if kind == "orderflow":
            outcome = run_orderflow(args.n, args.batch_size)
        else:
            outcome = run_reference(args.reference_batch_size, producers[kind])
    left, (on_topic, distinct) = unpublished(), topic_count(topic)
    delete_topic(topic)
    run = {
        "kind": kind,
        "events": args.n,
        "seconds": round(timer.seconds, 3),
        "events_per_s": round(args.n / timer.seconds, 1),
        "fill_seconds": round(fill_s, 2),
        "left_unpublished": left,
        "messages_on_topic": on_topic,
        "distinct_event_ids": distinct,
        **outcome,
    }
    if left or distinct != args.n:
        run["error"] = f"expected {args.n} events published and on the topic: {left} left, {distinct} on the topic"
    if profile:
        focus = "run_orderflow (" if kind == "orderflow" else "run_reference ("
        run["profile"] = profiling.summarize(profile, focus=focus)
    print(f"relay {kind:15s} run {index}: {run['events_per_s']:>9,.0f} events/s ({timer.seconds:.2f} s)", flush=True)
    return run


def schedule(runs: int, tuned: bool) -> list[str]:
    """Interleaved so that drift over the run (a warming cache, a busy neighbour) hits every kind
    alike: A B B A, or A B C C B A with the tuned reference."""
    kinds = ["orderflow", "reference", "reference_tuned"] if tuned else ["orderflow", "reference"]
    return (kinds + kinds[::-1])[: runs * len(kinds) // 2]


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.batch_size is None:
        args.batch_size = settings.OUTBOX_RELAY_BATCH_SIZE  # what the Celery task relays with
    producers = {"reference": Producer(plain_producer_config())}
    if args.tuned_reference:
        producers["reference_tuned"] = Producer(relay_producer_config())  # the same settings as OrderFlow's
    # Warm every producer up (metadata, connections) outside the timed runs.
    for producer in (shared_producer(), *producers.values()):
        producer.list_topics(timeout=10)
    runs = [timed_run(kind, i, args, producers) for i, kind in enumerate(schedule(args.runs, args.tuned_reference))]

    def rate(kind: str) -> float | None:
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            return None
        return round(sum(r["events"] for r in mine) / sum(r["seconds"] for r in mine), 1)

    ours, ref, tuned = rate("orderflow"), rate("reference"), rate("reference_tuned")
    return {
        "events": args.n,
        "batch_size": args.batch_size,
        "reference_batch_size": args.reference_batch_size,
        "partitions": PARTITIONS,
        "events_per_s": ours,
        "reference_events_per_s": ref,
        "ratio": round(ours / ref, 3) if ref else None,
        "reference_tuned_events_per_s": tuned,
        "ratio_tuned": round(ours / tuned, 3) if tuned else None,
        "producers": {
            "orderflow": _shown(relay_producer_config()),
            "reference": _shown(plain_producer_config()),
            **({"reference_tuned": _shown(relay_producer_config())} if tuned else {}),
        },
        "runs": runs,
        "errors": [r["error"] for r in runs if "error" in r],
        "method": (
            f"interleaved runs ({', '.join(schedule(args.runs, args.tuned_reference))}) on a freshly filled and "
            "vacuumed outbox and a fresh topic each; rate = events / seconds summed over each kind's runs; "
            "reference = naive relay, LIMIT 1000, librdkafka defaults + enable.idempotence; "
            "reference_tuned = the same relay with OrderFlow's producer settings"
        ),
    }


def _shown(config: dict) -> dict:
    """The producer settings worth reporting: not the servers' address, not callbacks."""
    return {k: v for k, v in config.items() if k != "bootstrap.servers" and not callable(v)}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=4, choices=[2, 3, 4], help="runs per kind × 2 (4: A B B A)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="OrderFlow's batch (default: settings.OUTBOX_RELAY_BATCH_SIZE)"
    )
    parser.add_argument("--reference-batch-size", type=int, default=1000)
    parser.add_argument(
        "--tuned-reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the reference relay with OrderFlow's producer settings",
    )


if __name__ == "__main__":
    task.run(main, configure)

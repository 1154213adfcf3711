"""Consumer benchmark: apply N OrderPlaced events through the real inventory consumer (CloudEvents
parsing, contract validation, inbox row + handler in one transaction, offset stored after commit)
and compare with the raw consume rate of the same topic.

The handler is inventory's real one: runs of OrderPlaced go to `services.orders_reserve` (the
batch handler; `order_reserve` one by one on the slow path), which locks the orders' stock rows in
sku order, reserves, writes the Reservations and records StockReserved in inventory's outbox — the
first hop of every order's saga. As under `manage.py consume`, the consumer then relays those
events itself after each commit (CONSUMER_RELAY_INLINE), so the rate includes publishing them.
Stock rows for the skus are created up front with plenty on hand, so every event is a successful
reservation.

Raw: a bare confluent_kafka Consumer with a fresh group and the same consumer settings, reading
the same topic and touching each message's value and headers, nothing else.

Both rates are timed from the first message to the last, so the broker's (slow) group join is
not counted. With `--timeout`, a consumer slower than N events in that time is stopped and its
rate is taken over the events it applied (`real.complete` is then false).
Run by `python -m bench`: `python -m bench.consumer --n 100000 --out FILE`.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import threading
import time
import uuid
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, Producer
from django.conf import settings
from django.db import connections

import contracts.orders as order_events
from bench import memory, profiling, task
from orderflow.messaging import outbox
from orderflow.messaging.consumer import ContextConsumer
from orderflow.messaging.envelope import Envelope
from orderflow.messaging.kafka import consumer_config, producer_config, topic_name

CONTEXT = "inventory"
SKUS = [f"SKU-B{n:04d}" for n in range(200)]


def seed_stock() -> None:
    with connections[CONTEXT].cursor() as cursor:
        cursor.execute(
            "INSERT INTO inventory_stockitem (sku, on_hand, reserved, updated_at) "
            "SELECT unnest(%s::text[]), 1000000000, 0, now() ON CONFLICT (sku) DO NOTHING",
            [SKUS],
        )


def order_placed(i: int) -> Envelope:
    """A valid OrderPlaced v1 of a two-line order, with the envelope the relay would send."""
    order_id, customer_id = uuid.uuid4(), uuid.uuid4()
    line = {"unit_price": {"amount": "19.99", "currency": "USD"}}
    data = {
        "order_id": str(order_id),
        "customer_id": str(customer_id),
        "lines": [
            {"sku": SKUS[i % 200], "quantity": 1 + i % 3, **line},
            {"sku": SKUS[(i + 100) % 200], "quantity": 1, **line},
        ],
        "total": {"amount": "79.96", "currency": "USD"},
        "card_token": "tok_visa",
    }
    return Envelope(
        id=str(uuid.uuid4()),
        type=order_events.OrderPlaced.type,
        source="/orderflow/orders",
        subject=str(order_id),
        time=datetime.now(UTC),
        data=data,
        traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        correlation_id=str(uuid.uuid4()),
    )


def produce(topic: str, n: int) -> float:
    order_events.OrderPlaced.validate(order_placed(0).data)
    producer = Producer(producer_config())
    started = time.perf_counter()
    for i in range(n):
        event = order_placed(i)
        while True:
            try:
                producer.produce(topic, key=event.subject.encode(), value=event.value(), headers=event.headers())
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError("the broker did not acknowledge every event")
    return time.perf_counter() - started


# --- the real consumer ------------------------------------------------------------------------------------


def run_real(n: int, timeout: float, profile: Path | None) -> dict[str, Any]:
    """Run the production consumer until it has applied `n` events; a watcher thread samples
    `consumer.applied` every 5 ms to time the first to the last application (it needs nothing of
    the consumer's internals) and profiles that stretch."""
    consumer = ContextConsumer(CONTEXT, group_id=f"bench.inventory.{uuid.uuid4().hex[:8]}")
    marks: dict[str, float] = {}
    # PostgreSQL's CPU (its whole process tree), sampled at the first and the last event.
    servers = {"postgres": _postmaster_pid()}
    sampler = memory.Sampler(lambda: servers)
    finished = threading.Event()
    collector = _GcTimer()
    spent: dict[str, _Spent] = {}

    def snapshot() -> _Spent:
        return _Spent(
            process=_cpu_seconds(),
            threads=_thread_cpu_seconds(),
            postgres=sampler.cpu_seconds().get("postgres", 0.0),
            gc_collections=[generation["collections"] for generation in gc.get_stats()],
            gc_seconds=list(collector.seconds),
        )

    def handled() -> int:
        return consumer.applied + consumer.skipped + consumer.dead_lettered

    def watch() -> None:
        with ExitStack() as stack:
            deadline = time.monotonic() + timeout
            while handled() < n and time.monotonic() < deadline and not finished.is_set():
                if "first" not in marks and consumer.applied:
                    marks["first"], marks["applied_at_first"] = time.perf_counter(), consumer.applied
                    spent["first"] = snapshot()
                    if profile:
                        wall = not profiling.consumers_on_cpu()  # waits included, or on-CPU only
                        stack.enter_context(profiling.record(os.getpid(), profile, idle=wall))
                time.sleep(0.005)
            marks["last"], spent["last"] = time.perf_counter(), snapshot()
        consumer.stop()

    watcher = threading.Thread(target=watch, name="bench-watch", daemon=True)
    watcher.start()
    # As `manage.py consume` runs it: relaying its own outbox (StockReserved) after each commit.
    inline = outbox.inline_relay(CONTEXT) if settings.CONSUMER_RELAY_INLINE else nullcontext()
    gc.callbacks.append(collector)
    try:
        with inline:
            consumer.run()
    finally:
        finished.set()
        watcher.join()
        gc.callbacks.remove(collector)
    seconds = marks["last"] - marks.get("first", marks["last"])
    counted = consumer.applied - marks.get("applied_at_first", 0)
    first = spent.get("first", spent["last"])  # nothing applied: every difference is zero
    used = spent["last"].minus(first)

    def per_event(value: float) -> float:
        return round(1e6 * value / counted, 1) if counted else 0.0

    return {
        "applied": consumer.applied,
        "skipped": consumer.skipped,
        "dead_lettered": consumer.dead_lettered,
        "seconds": round(seconds, 3),
        "events_per_s": round(counted / seconds, 1) if seconds > 0 else 0.0,
        # The process's own CPU (every thread) per event: steadier than the rate on a shared
        # machine, and what a change to the consumer's Python work moves.
        "cpu_cores": round(used.process / seconds, 2) if seconds > 0 else 0.0,
        "cpu_us_per_event": per_event(used.process),
        "postgres_cpu_us_per_event": per_event(used.postgres),
        # The same split by thread: the consumer's, its relay's, librdkafka's own (rdk:…).
        "cpu_us_per_event_by_thread": {
            name: per_event(value) for name, value in sorted(used.threads.items()) if value > 0
        },
        # The cyclic garbage collector's share (wall time inside collections, which hold the
        # GIL), and its collections per generation.
        "gc_us_per_event": per_event(sum(used.gc_seconds)),
        "gc_collections": used.gc_collections,
        "gc_ms_by_generation": [round(1e3 * value, 1) for value in used.gc_seconds],
        "complete": handled() >= n,
    }


@dataclass(frozen=True)
class _Spent:
    """What the process, its threads, PostgreSQL and the garbage collector had used so far."""

    process: float
    threads: dict[str, float]
    postgres: float
    gc_collections: list[int]
    gc_seconds: list[float]

    def minus(self, earlier: _Spent) -> _Spent:
        return _Spent(
            process=self.process - earlier.process,
            threads={name: value - earlier.threads.get(name, 0.0) for name, value in self.threads.items()},
            postgres=self.postgres - earlier.postgres,
            gc_collections=[a - b for a, b in zip(self.gc_collections, earlier.gc_collections, strict=True)],
            gc_seconds=[a - b for a, b in zip(self.gc_seconds, earlier.gc_seconds, strict=True)],
        )


class _GcTimer:
    """A gc callback adding up the time spent in collections, by generation (gc.get_stats()
    counts them)."""

    def __init__(self) -> None:
        self.seconds = [0.0] * len(gc.get_stats())
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self._started = None


def _thread_cpu_seconds() -> dict[str, float]:
    """User + system CPU so far of this process's threads, summed by kind: Python threads by
    name, the others (librdkafka's) by their kernel name without the trailing number."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:  # not Linux: no split
        return {}
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat, open(f"/proc/self/task/{tid}/comm") as comm:
                fields, kernel_name = stat.read().rsplit(")", 1)[1].split(), comm.read().strip()
        except OSError:
            continue  # the thread ended meanwhile
        name = names.get(int(tid)) or re.sub(r"[-\d]+$", "", kernel_name)
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return seconds


def verify(n: int) -> dict[str, int]:
    """What the handler left in inventory's database: one reservation, inbox row and outbox event per order."""
    counts = {}
    with connections[CONTEXT].cursor() as cursor:
        for name, query in {
            "reservations": "SELECT count(*) FROM inventory_reservation WHERE status = 'RESERVED'",
            "inbox_rows": "SELECT count(*) FROM inventory_inboxevent",
            "outbox_events": (
                "SELECT count(*) FROM inventory_outboxevent WHERE type = 'orderflow.inventory.StockReserved.v1'"
            ),
            # Relayed by the consumer itself after each commit (CONSUMER_RELAY_INLINE).
            "outbox_published": "SELECT count(*) FROM inventory_outboxevent WHERE published_at IS NOT NULL",
        }.items():
            cursor.execute(query)
            counts[name] = cursor.fetchone()[0]
    return counts


def _cpu_seconds() -> float:
    """User + system CPU of this process so far, every thread included."""
    times = os.times()
    return times.user + times.system


def _postmaster_pid() -> int | None:
    """The benchmark's PostgreSQL server (the parent of this process's backend), for
    `memory.Sampler`; None if it is not on this machine."""
    with connections[CONTEXT].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        return psutil.Process(backend).ppid()
    except psutil.Error:
        return None


# --- the raw consume rate -------------------------------------------------------------------------------------


def run_raw(topic: str, n: int, timeout: float) -> dict[str, Any]:
    consumer = Consumer(consumer_config(f"bench.raw.{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    count = counted_from = 0
    first_at = last_at = 0.0
    deadline = time.monotonic() + timeout
    try:
        while count < n and time.monotonic() < deadline:
            messages = consumer.consume(num_messages=500, timeout=0.5)
            for message in messages:
                if message.error() is None:
                    message.value(), message.headers()
                    count += 1
            if messages:
                last_at = time.perf_counter()
                if not first_at:  # the clock starts when the first batch is in hand
                    first_at, counted_from = last_at, count
    finally:
        consumer.close()
    seconds = last_at - first_at
    return {
        "consumed": count,
        "seconds": round(seconds, 3),
        "events_per_s": round((count - counted_from) / seconds, 1) if seconds > 0 else 0.0,
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    topic = topic_name(order_events.OrderPlaced.stream)
    seed_stock()
    produce_s = produce(topic, args.n)
    print(f"consumer: {args.n} OrderPlaced on {topic} in {produce_s:.1f} s", flush=True)
    raw_before = run_raw(topic, args.n, args.timeout)
    profile = Path(args.profile_dir) / "consumer-inventory.raw" if args.profile_dir else None
    real = run_real(args.n, args.timeout, profile)
    raw_after = run_raw(topic, args.n, args.timeout)
    print(f"consumer: real {real['events_per_s']:,.0f}/s, raw {raw_before['events_per_s']:,.0f}/s", flush=True)
    counts = verify(args.n)
    expected = real["applied"]  # all N unless the time limit stopped it
    errors = [f"{k} = {v}, expected {expected}" for k, v in counts.items() if v != expected]
    if real["dead_lettered"]:
        errors.append(f"{real['dead_lettered']} event(s) dead-lettered")
    raw_rates = [r["events_per_s"] for r in (raw_before, raw_after) if r["consumed"] >= args.n]
    result = {
        "events": args.n,
        "handler": "inventory OrderPlaced (batch handler services.orders_reserve), two lines per order, relayed inline",
        "events_per_s": real["events_per_s"],
        "raw_events_per_s": round(sum(raw_rates) / len(raw_rates), 1) if raw_rates else 0.0,
        "real": real,
        "raw_runs": [raw_before, raw_after],
        "verified": counts,
        "errors": errors,
        "produce_seconds": round(produce_s, 2),
    }
    if profile:
        result["profile"] = profiling.summarize(profile, focus="run (orderflow/messaging/consumer.py")
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=900)


if __name__ == "__main__":
    task.run(main, configure)

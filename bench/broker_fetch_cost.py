"""The embedded broker's cost per fetch against the number of record batches a partition holds.

    .venv/bin/python -m bench.broker_fetch_cost            # about a minute

Evidence for docs/benchmarks.md (seventh round), not part of `make bench`: one consumer (10 ms
fetch wait, as in the dev and test settings) reads a one-partition topic while a producer sends
100 one-record batches a second, as the saga's relays do; the topic first receives N one-record
batches. Tansu's CPU (user + system, psutil) is sampled over each window. A window without new
records shows that only a fetch that finds new data pays for the partition's length.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

import psutil
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from orderflow.stack.components import start_kafka

PAYLOAD = b"x" * 420  # about an OrderPlaced event


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _broker_process(port: str) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "broker" in cmdline and any(part.endswith(f":{port}") for part in cmdline):
            return process
    raise RuntimeError(f"no broker process listening on port {port}")


def _fill(producer: Producer, topic: str, batches: int, partitions: int) -> None:
    for n in range(batches):
        producer.produce(topic, PAYLOAD, partition=n % partitions)
        producer.flush()  # one produce request, so one stored batch, per record


def _window(
    bootstrap: str,
    broker: psutil.Process,
    topic: str,
    producer: Producer,
    *,
    rate: int,
    seconds: float,
    partitions: int,
) -> tuple[float, int]:
    """Tansu's cores while one consumer reads `topic` and `rate` one-record batches/s arrive."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fetch-cost-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest",
            "fetch.wait.max.ms": 10,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    stop = threading.Event()
    received = [0]

    def poll() -> None:
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is not None and not message.error():
                received[0] += 1

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    time.sleep(7)  # the group join, which Tansu answers slowly
    received[0] = 0
    started_cpu, started = _cpu_seconds(broker), time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        if rate:
            producer.produce(topic, PAYLOAD, partition=sent % partitions)
            sent += 1
            producer.flush()
            time.sleep(1 / rate)
        else:
            time.sleep(0.1)
    cores = (_cpu_seconds(broker) - started_cpu) / (time.monotonic() - started)
    stop.set()
    thread.join()
    consumer.close()
    return cores, received[0]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_fetch_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,2000,5000,10000", help="stored batches before each window")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--partitions", type=int, default=1, help="partitions of each topic (batches spread round-robin)"
    )
    args = parser.parse_args()
    kafka = start_kafka()
    try:
        bootstrap = kafka.env["KAFKA_BOOTSTRAP_SERVERS"]
        broker = _broker_process(bootstrap.rsplit(":", 1)[1])
        admin = AdminClient({"bootstrap.servers": bootstrap})
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 0})
        print("stored batches | new batches/s | Tansu cores | records received")
        sizes = [int(size) for size in args.sizes.split(",")]
        for size in sizes:
            topic = f"fetch-cost-{size}"
            for future in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
                future.result()
            _fill(producer, topic, size, args.partitions)
            # The longest topic also gets a window without new data.
            for rate in (100, 0) if size == max(sizes) else (100,):
                cores, received = _window(
                    bootstrap, broker, topic, producer, rate=rate, seconds=args.seconds, partitions=args.partitions
                )
                print(f"{size:>14,} | {rate:>13} | {cores:>11.3f} | {received:>16,}", flush=True)
    finally:
        kafka.stop()


if __name__ == "__main__":
    main()

"""What a one-event consumer batch and a one-row relay run cost, apart from the events they carry.

    .venv/bin/python -m bench.fixed_cost                  # about two minutes
    .venv/bin/python -m bench.fixed_cost --events 1000 --runs 2

Evidence for docs/benchmarks.md (twelfth round), not part of `make bench`. At the saga's rates a
consumer's batch carries one to three events, and each batch's commit wakes one relay run. This
benchmark times both on their own. The production `ContextConsumer("inventory")` applies N
OrderPlaced events one per batch, fetched from the real broker beforehand. After each batch,
`tasks.relay_here` relays its one StockReserved, the way the consumer's relay thread does. Each
run alternates between the two ways that relay can run:

- `handover`: the hand-over every attempt used to make (decision 22): a Redis count before the
  lock, and a second look at the count after it;
- `listened`: a listening relay's run (decision 48), which uses Redis only when it was locked
  out.

Reported for each: the CPU time of the thread (`time.thread_time`) and the wall time of a batch
and of a relay run, on average.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
import uuid
from pathlib import Path
from typing import Any

from bench import task

MODES = ("handover", "listened")
PROFILES = Path("bench/results/profiles").resolve()
WARM_UP = 50  # batches applied and relayed before the clock starts: connections, prepared statements


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Django side (run by `Sandbox.task` in a fresh sandbox)."""
    from confluent_kafka import Consumer

    import contracts.orders as order_events
    from bench.consumer import produce, seed_stock
    from orderflow.messaging import tasks
    from orderflow.messaging.consumer import ContextConsumer
    from orderflow.messaging.kafka import shared_producer, topic_name

    topic = topic_name(order_events.OrderPlaced.stream)
    seed_stock()
    produce(topic, args.events + WARM_UP)
    consumer = ContextConsumer("inventory", group_id=f"bench.fixed.{uuid.uuid4().hex[:8]}")
    fetcher = Consumer(consumer._config)
    fetcher.subscribe([topic])
    messages = []
    deadline = time.monotonic() + 120
    while len(messages) < args.events + WARM_UP:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fetched {len(messages)} of {args.events + WARM_UP} events in 120 s")
        message = fetcher.poll(1.0)
        if message is not None and not message.error():
            messages.append(message)
    fetcher.close()
    shared_producer()
    listened = args.mode == "listened"
    for message in messages[:WARM_UP]:
        consumer.handle_batch([message])
        tasks.relay_here("inventory", listened=listened)
    spent = {"batch_cpu": 0.0, "batch_wall": 0.0, "relay_cpu": 0.0, "relay_wall": 0.0}
    # --profile: a CPU-time cProfile of the batches alone (it inflates Python-heavy code; the
    # timings of a profiled run are not comparable with an unprofiled one).
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    for message in messages[WARM_UP:]:
        cpu, wall = time.thread_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        if consumer.handle_batch([message]) != [message]:
            raise RuntimeError("a batch was not applied")
        if profiler:
            profiler.disable()
        cpu_applied, wall_applied = time.thread_time(), time.perf_counter()
        if not tasks.relay_here("inventory", listened=listened):
            raise RuntimeError("a relay run failed")
        spent["batch_cpu"] += cpu_applied - cpu
        spent["batch_wall"] += wall_applied - wall
        spent["relay_cpu"] += time.thread_time() - cpu_applied
        spent["relay_wall"] += time.perf_counter() - wall_applied
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
        Path(args.profile).write_text(out.getvalue())
    return {
        "mode": args.mode,
        "events": args.events,
        **{f"{k}_us": round(v / args.events * 1e6, 1) for k, v in spent.items()},
    }


def main() -> None:
    from bench import env

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1500, help="one-event batches timed per run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode, alternating")
    parser.add_argument("--out", type=Path, default=Path("bench/results/fixed_cost.json"))
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the batches: bench/results/profiles/fixed_cost-<mode>.txt"
    )
    args = parser.parse_args()
    if args.events < 1 or args.runs < 1:
        parser.error("--events and --runs must be ≥ 1")
    infra = env.start_infra()
    runs = []
    try:
        for n in range(args.runs):
            for mode in MODES:
                with env.sandbox(infra, "fixed") as box:
                    extra = ["--profile", str(PROFILES / f"fixed_cost-{mode}.txt")] if args.profile else []
                    result = box.task("bench.fixed_cost", ["--mode", mode, "--events", str(args.events), *extra])
                runs.append({"run": n + 1, **result})
                print(
                    f"{mode:9s} batch {result['batch_cpu_us']:7.1f} µs CPU {result['batch_wall_us']:7.1f} wall; "
                    f"relay run {result['relay_cpu_us']:7.1f} µs CPU {result['relay_wall_us']:7.1f} wall",
                    flush=True,
                )
    finally:
        infra.stop()
    args.out.write_text(json.dumps({"runs": runs}, indent=2))
    print(f"wrote {args.out}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--profile", default=None, help="write a cProfile of the batches here")


if __name__ == "__main__":
    import sys

    if "--mode" in sys.argv:  # the Django side, started by Sandbox.task
        task.run(measure, configure)
    else:
        main()

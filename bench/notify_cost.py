"""What the outbox's commit notification (decision 43) costs a committing transaction.

    .venv/bin/python -m bench.notify_cost                 # about two minutes
    .venv/bin/python -m bench.notify_cost --writers 1,8,32 --seconds 5

Evidence for docs/benchmarks.md (ninth round), not part of `make bench`. PostgreSQL serializes
the commits of transactions that sent a notification (they take one database-wide lock while they
queue it), so concurrent committers that would share one WAL flush may each wait for their own.
Here W processes each commit one-row inserts of an OrderPlaced-sized outbox row as fast as they
can, with the server's durability settings untouched, into a table that has

- `plain`: no trigger,
- `notify`: the outbox's trigger exactly as the migrations install it (messaging.notify), nobody
  listening,
- `listened`: the same trigger, and a session that LISTENs and reads every notification, as a
  context's relay does,
- `silenced`: the same listener, and writers that turned their notifications off
  (`notify.SETTING`, as the sessions of a process with OUTBOX_RELAY_LISTEN=false do),

in the order plain, notify, listened, silenced, silenced, listened, notify, plain per writer count, so that a drift of
the machine shows up as a difference between the two runs of a kind. Reported: commits/s summed
over the writers and each commit's latency (INSERT + COMMIT, p50/p99).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import threading
import time
import uuid
from pathlib import Path

from bench.env import DB_PREFIX, Infra, pg_connect, start_infra
from orderflow.messaging.notify import SETTING, silenceable_operation, trigger_operation

TABLE = "bench_notify_outbox"
PAYLOAD = json.dumps({"order_id": str(uuid.UUID(int=0)), "pad": "x" * 380})  # about an OrderPlaced
KINDS = ("plain", "notify", "listened", "silenced")


def _writer(
    server: str, database: str, silenced: bool, seconds: float, start_at: float, out: multiprocessing.Queue
) -> None:
    """One committing session: autocommit, so each INSERT is a transaction of its own."""
    latencies: list[float] = []
    with pg_connect(server, database) as conn:
        if silenced:
            conn.execute(f"SET {SETTING} = 'off'")
        insert = f"INSERT INTO {TABLE} (payload) VALUES (%s::jsonb)"
        conn.execute(insert, [PAYLOAD], prepare=True)
        time.sleep(max(start_at - time.time(), 0.0))
        deadline = time.monotonic() + seconds
        while (began := time.monotonic()) < deadline:
            conn.execute(insert, [PAYLOAD], prepare=True)
            latencies.append(time.monotonic() - began)
    out.put(latencies)


def _listen(server: str, database: str, stop: threading.Event, heard: list[int]) -> None:
    with pg_connect(server, database) as conn:
        conn.execute(f'LISTEN "{TABLE}"')
        while not stop.is_set():
            for _ in conn.notifies(timeout=0.1):
                heard[0] += 1


def _set_trigger(server: str, database: str, *, on: bool) -> None:
    """The trigger as the contexts' migrations leave it (installed, then made silenceable), or none."""
    installed = trigger_operation(TABLE)
    with pg_connect(server, database) as conn:
        for statement in installed.reverse_sql:
            conn.execute(statement)
        if on:
            for statement in [*installed.sql, silenceable_operation().sql]:
                conn.execute(statement)
        conn.execute(f"TRUNCATE {TABLE}")
        conn.execute("CHECKPOINT")  # each run starts with the same WAL state


def _run(server: str, database: str, kind: str, writers: int, seconds: float) -> dict:
    _set_trigger(server, database, on=kind != "plain")
    stop, heard = threading.Event(), [0]
    listener = threading.Thread(target=_listen, args=(server, database, stop, heard), daemon=True)
    listens = kind in ("listened", "silenced")
    if listens:
        listener.start()
        time.sleep(0.2)
    results: multiprocessing.Queue = multiprocessing.Queue()
    start_at = time.time() + 1.0  # every writer connected and prepared before the clock starts
    args = (server, database, kind == "silenced", seconds, start_at, results)
    procs = [multiprocessing.Process(target=_writer, args=args) for _ in range(writers)]
    for proc in procs:
        proc.start()
    latencies = [lat for _ in procs for lat in results.get(timeout=seconds + 60)]
    for proc in procs:
        proc.join()
    stop.set()
    if listens:
        listener.join()
    latencies.sort()
    return {
        "kind": kind,
        "writers": writers,
        "commits_per_s": round(len(latencies) / seconds),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "notifications_heard": heard[0] if listens else None,
    }


def measure(infra: Infra, *, writer_counts: list[int], seconds: float) -> list[dict]:
    server = infra.env["DATABASE_URL"]
    database = f"{DB_PREFIX}notify_{uuid.uuid4().hex[:6]}"
    with pg_connect(server, "postgres") as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        with pg_connect(server, database) as conn:
            conn.execute(
                f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, payload jsonb NOT NULL, published_at timestamptz)"
            )
            conn.execute(f"CREATE INDEX ON {TABLE} (id) WHERE published_at IS NULL")
        runs = []
        for writers in writer_counts:
            for kind in (*KINDS, *reversed(KINDS)):
                run = _run(server, database, kind, writers, seconds)
                print(
                    f"writers {writers:3d} {kind:9s} {run['commits_per_s']:6d} commits/s, "
                    f"p50 {run['p50_ms']:6.2f} ms, p99 {run['p99_ms']:6.2f} ms",
                    flush=True,
                )
                runs.append(run)
        return runs
    finally:
        with pg_connect(server, "postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def summary(runs: list[dict]) -> list[dict]:
    """Per writer count and kind: the mean of its two runs, and the ratio to `plain`."""
    rows = []
    for writers in sorted({r["writers"] for r in runs}):
        mean = {
            kind: statistics.mean(r["commits_per_s"] for r in runs if r["writers"] == writers and r["kind"] == kind)
            for kind in KINDS
        }
        for kind in KINDS:
            rows.append(
                {
                    "writers": writers,
                    "kind": kind,
                    "commits_per_s": round(mean[kind]),
                    "vs_plain": round(mean[kind] / mean["plain"], 3),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", default="1,4,16", help="comma-separated numbers of committing processes")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--out", type=Path, default=Path("bench/results/notify_cost.json"))
    args = parser.parse_args()
    try:
        writer_counts = [int(n) for n in args.writers.split(",")]
    except ValueError:
        parser.error(f"--writers: expected comma-separated integers, got {args.writers!r}")
    if any(n < 1 for n in writer_counts) or args.seconds <= 0:
        parser.error("--writers must be ≥ 1 and --seconds > 0")
    infra = start_infra()
    try:
        runs = measure(infra, writer_counts=writer_counts, seconds=args.seconds)
    finally:
        infra.stop()
    rows = summary(runs)
    for row in rows:
        print(f"writers {row['writers']:3d} {row['kind']:9s} {row['commits_per_s']:6d}/s ×{row['vs_plain']:.3f}")
    args.out.write_text(json.dumps({"runs": runs, "summary": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

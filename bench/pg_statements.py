"""Where PostgreSQL's CPU goes in a saga step: pg_stat_statements and each backend's CPU.

    .venv/bin/python -m bench.pg_statements                  # a 60-s step at 50 orders/s, ~2 minutes
    .venv/bin/python -m bench.pg_statements --rate 20 --seconds 30 --top 40

Evidence for docs/benchmarks.md (fifteenth round), not part of `make bench`. The bench's own
PostgreSQL (var/bench) is restarted with `pg_stat_statements` preloaded (planning tracked too),
one saga step runs on a fresh system as in `make bench` (saga.run_step), and then it reports:

- the CPU of PostgreSQL's backends, by database (psutil, sampled every 0.5 s);
- per statement: calls, how many of them were planned (`plans`: a prepared statement whose
  cached plan is reused is not), execution and planning time, rows, and µs per call.

The server's configuration is put back afterwards. It refuses a PostgreSQL it did not start
(DATABASE_URL from the environment): preloading a library needs a restart.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from bench import env, memory, saga

SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track_planning": "on",
    "pg_stat_statements.track": "all",
}
STATEMENTS = """
    SELECT d.datname, s.calls, s.plans, s.total_exec_time, s.total_plan_time, s.rows,
           left(regexp_replace(s.query, '\\s+', ' ', 'g'), 200)
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    WHERE d.datname LIKE %s
    ORDER BY s.total_exec_time + s.total_plan_time DESC
"""


def _configure(infra: env.Infra, *, preload: bool) -> env.Infra:
    """Set (or reset) SETTINGS and restart the server; the new Infra."""
    with env.pg_connect(infra.env["DATABASE_URL"], "postgres") as conn:
        for name, value in SETTINGS.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'" if preload else f"ALTER SYSTEM RESET {name}")
    infra.stop()
    return env.start_infra()


class _BackendCpu:
    """CPU seconds of each PostgreSQL backend, sampled so short-lived ones are counted too."""

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sample(initial=True)
        self._thread.start()

    def _sample(self, *, initial: bool = False) -> None:
        for child in psutil.Process(self.postmaster).children():
            try:
                title, times = " ".join(child.cmdline()), child.cpu_times()
            except psutil.Error:
                continue
            used = times.user + times.system
            self.first.setdefault(child.pid, used if initial else 0.0)
            self.last[child.pid] = (title, used)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def stop(self, database: str) -> dict[str, float]:
        """CPU seconds since the start by backend kind: the database (named without the sandbox's
        prefix) for client backends, the process title for the others."""
        self._stop.set()
        self._thread.join()
        self._sample()
        used: Counter[str] = Counter()
        for pid, (title, cpu) in self.last.items():
            kind = title.removeprefix("postgres: ").split(" [local]")[0].split(" 127.0.0.1")[0].strip()
            used[kind.replace(f"postgres {database}", "db").replace(database, "db")] += cpu - self.first[pid]
        return dict(used.most_common())


def measure(infra: env.Infra, *, rate: float, seconds: float) -> dict[str, Any]:
    plan = saga.Plan(rates=(rate,), window=seconds, drain=60, search_steps=0, fresh_system_per_step=True)
    with (infra.log_dir / "pg_statements.log").open("a") as out, saga._system(infra, out) as system:
        servers = memory.server_pids(infra.components, env.VAR_DIR)
        sampler = memory.Sampler(lambda: {**{s: system.supervisor.pid(s) for s in saga.SERVICES}, **servers}).start()
        with env.pg_connect(infra.env["DATABASE_URL"], "postgres") as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        backends = _BackendCpu(servers["postgres"])
        started = time.monotonic()
        step = saga.run_step(system.box, system.base, system.tokens, rate, plan, abort_fraction=0.2, sampler=sampler)
        wall = time.monotonic() - started
        sampler.stop()
        by_backend = backends.stop(system.box.database)
        with env.pg_connect(infra.env["DATABASE_URL"], "postgres") as conn:
            rows = conn.execute(STATEMENTS, [system.box.database + "%"]).fetchall()
    statements = [
        {
            "database": name.removeprefix(system.box.database).lstrip("_") or "default",
            "calls": calls,
            "plans": plans,
            "exec_ms": round(exec_ms, 1),
            "plan_ms": round(plan_ms, 1),
            "rows": n,
            "us_per_call": round((exec_ms + plan_ms) / max(calls, 1) * 1000, 1),
            "query": query,
        }
        for name, calls, plans, exec_ms, plan_ms, n, query in rows
    ]
    return {
        "rate": rate,
        "seconds": seconds,
        "wall_s": round(wall, 1),
        "p50_ms": step["p50_ms"],
        "p99_ms": step["p99_ms"],
        "cpu_cores": step["cpu_cores"],
        "backend_cores": {k: round(v / wall, 3) for k, v in by_backend.items() if v / wall >= 0.001},
        "statements_exec_s": round(sum(s["exec_ms"] for s in statements) / 1000, 2),
        "statements_plan_s": round(sum(s["plan_ms"] for s in statements) / 1000, 2),
        "statements": statements,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_statements", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="orders per second (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="the step's window (default 60)")
    parser.add_argument("--top", type=int, default=25, help="statements printed (all are in the JSON)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pg_statements.json"))
    args = parser.parse_args()
    infra = env.start_infra()
    if not infra.owns_servers:
        infra.stop()
        raise SystemExit("bench.pg_statements restarts PostgreSQL to preload pg_stat_statements: unset DATABASE_URL")
    infra = _configure(infra, preload=True)
    try:
        env.fresh_broker(infra)
        result = measure(infra, rate=args.rate, seconds=args.seconds)
    finally:
        _configure(infra, preload=False).stop()
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{args.rate:g} orders/s for {args.seconds:g} s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    print(f"cores by process kind: {result['cpu_cores']}")
    print(f"PostgreSQL backends' cores: {result['backend_cores']}")
    print(f"statements: {result['statements_exec_s']} s executing, {result['statements_plan_s']} s planning")
    print(" database       calls    plans  exec ms  plan ms  µs/call  statement")
    for s in result["statements"][: args.top]:
        print(
            f" {s['database']:13} {s['calls']:6} {s['plans']:8} {s['exec_ms']:8.1f} {s['plan_ms']:8.1f} "
            f"{s['us_per_call']:8.1f}  {s['query'][:110]}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

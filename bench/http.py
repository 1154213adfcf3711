"""HTTP benchmark: `POST /api/orders/` against a trivial authenticated DRF endpoint, both served
by the production server configuration (gunicorn, deploy/gunicorn.conf.py: gthread, 2×CPU+1
workers × 4 threads) on fresh databases, closed loop at concurrency 16.

Only gunicorn and the orders context's listening relay run (no worker or consumers): the figure is
the web tier's. Each order still does its whole request: JWT, validation, prices and customer
status from the replicas, the order, lines, read model, timeline and outbox rows in one statement
— and the relay that the commit's notification wakes publishes it to Kafka, as the orders
consumer's relay thread does in production (decision 43; `relay_outbox --listen` stands in for the
consumer process, which would also consume).
The floor (`POST /bench/floor-order/`, bench/baseline_urls.py) is measured beside them: the body
validated and one row committed, nothing else — what any order endpoint must add to the baseline.
Rounds alternate baseline, floor, orders, orders, floor, baseline after a warm-up of each, so drift
hits all three (QUICK: the floor once).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench import env, loadgen, memory, profiling, stack
from bench.floor import FLOOR_DDL


def _rounds(quick: bool) -> tuple[float, float]:
    return (1.5, 5.0) if quick else (3.0, 10.0)  # warm-up, measured seconds per round


def run(infra: env.Infra, *, quick: bool, profile_dir: Path | None) -> dict[str, Any]:
    warm, seconds = _rounds(quick)
    concurrency = 16
    with env.sandbox(infra, "http") as box:
        stack.seed(box, stock=False)
        web_log = infra.log_dir / "http-web.log"
        with stack.web_only(box, web_log) as (base, web), stack.relay_only(box, web_log, "orders") as relay:
            token = stack.customer_token(base)
            servers = memory.server_pids(infra.components, env.VAR_DIR)
            sampler = memory.Sampler(lambda: {"web": web.pid, "relay": relay.pid, **servers}).start()
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
            targets = {
                "baseline": f"{base}/bench/ping/",
                "place_order": f"{base}/api/orders/",
                "floor": f"{base}/bench/floor-order/",
            }
            with box.connect("orders") as conn:
                conn.execute(FLOOR_DDL)

            def load(name: str, duration: float) -> loadgen.LoadResult:
                before = web_log.stat().st_size
                cpu_before = sampler.cpu_seconds()
                result = loadgen.closed_loop(
                    targets[name],
                    method="POST",
                    body=stack.ORDER_BODY,
                    headers=headers,
                    concurrency=concurrency,
                    seconds=duration,
                    work_dir=infra.log_dir,
                )
                with web_log.open("rb") as log:
                    log.seek(before)
                    # max_requests (+ jitter) in the production config: workers are recycled.
                    result.worker_restarts = log.read().count(b"Booting worker with pid")
                cpu_after = sampler.cpu_seconds()
                # Cores used per kind during the round (web = gunicorn master + workers).
                result.cpu_cores = {
                    k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / result.seconds, 2) for k in sorted(cpu_after)
                }
                return result

            for name in targets:
                load(name, warm)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            # QUICK measures the floor once, to stay under three minutes in all.
            order = ("baseline", "floor", "place_order", "place_order", "baseline")
            if not quick:
                order = ("baseline", "floor", "place_order", "place_order", "floor", "baseline")
            for name in order:
                result = load(name, seconds)
                runs[name].append(result.as_dict())
                env.log(
                    f"http {name:11s}: {result.rps:8.1f} req/s  p50 {result.p50_ms} ms  p99 {result.p99_ms} ms  "
                    f"({result.worker_restarts} worker restart(s); cores {result.cpu_cores})"
                )
            profiles = {}
            if profile_dir:
                for name in targets:
                    raw = profile_dir / f"http-{name}.raw"
                    with profiling.record(web.pid, raw, idle=False, subprocesses=True, gil=True):
                        load(name, seconds)
                    profiles[name] = profiling.summarize(raw)
            sampler.stop()
        with box.connect("orders") as conn:
            orders = conn.execute("SELECT count(*) FROM orders_order").fetchone()[0]

    def combine(name: str) -> dict[str, Any]:
        rs = runs[name]
        total = sum(r["requests"] for r in rs)
        secs = sum(r["seconds"] for r in rs)
        return {
            "rps": round(total / secs, 1),
            "p50_ms": round(sum(r["p50_ms"] for r in rs) / len(rs), 2),
            "p99_ms": round(max(r["p99_ms"] for r in rs), 2),
            "errors": sum(r["errors"] for r in rs),
            "worker_restarts": sum(r["worker_restarts"] for r in rs),
            "cpu_cores": {k: round(sum(r["cpu_cores"].get(k, 0) for r in rs) / len(rs), 2) for k in rs[0]["cpu_cores"]},
            "runs": rs,
        }

    baseline, place, floor = combine("baseline"), combine("place_order"), combine("floor")
    result = {
        "place_order_rps": place["rps"],
        "p50_ms": place["p50_ms"],
        "p99_ms": place["p99_ms"],
        "baseline_rps": baseline["rps"],
        "baseline_p50_ms": baseline["p50_ms"],
        "baseline_p99_ms": baseline["p99_ms"],
        "ratio": round(place["rps"] / baseline["rps"], 3) if baseline["rps"] else None,
        "floor_rps": floor["rps"],
        "floor_ratio": round(floor["rps"] / baseline["rps"], 3) if baseline["rps"] else None,
        "concurrency": concurrency,
        "load_generator": runs["baseline"][0]["tool"],
        "server": f"gunicorn deploy/gunicorn.conf.py (WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', 'default')})",
        "orders_created": orders,
        "place_order": place,
        "baseline": baseline,
        "floor": floor,
        "errors": [
            f"{n}: {r['errors']} failed request(s)"
            for n, r in (("baseline", baseline), ("place_order", place), ("floor", floor))
            if r["errors"]
        ],
        "method": (
            f"closed loop, 16 connections, rounds {'/'.join(order)} after a warm-up; rps = requests / seconds "
            "over a kind's rounds, p50 = mean of the rounds' p50, p99 = worse round's p99"
        ),
    }
    if profiles:
        result["profiles"] = profiles
    return result

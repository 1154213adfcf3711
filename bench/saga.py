"""Saga benchmark: end-to-end latency from `POST /api/orders/` to CONFIRMED at fixed open-loop
arrival rates, and the highest rate the whole system sustains, all on this one machine.

The system is OrderFlow's real process set on a sandbox: gunicorn, a Celery worker and beat, one
consumer per context (orderflow.stack.processes, supervised like `python -m orderflow.stack
run`). Orders arrive at a fixed rate from a separate process (open loop: a slow answer does not
delay the next order), eight customers, two-line orders over 50 stocked skus.

Latency is measured server-side, not by polling (which would add load): after each step the
orders database is read for every accepted order — the OrderConfirmed entry of its timeline is
written in the transaction that confirms it, with the confirming process's wall clock, so
`confirmed - sent` (the load generator's wall clock when it sent the POST; same machine, same
clock) is the time until CONFIRMED became visible. An order not confirmed by the end of the
drain counts as infinitely late. The timeline also splits it into hops: the request itself, the
way to the participants (orders relay → Kafka → inventory/payments consumers) and back (their
relays → Kafka → orders consumer).

In the full run every step has a system of its own: a fresh embedded broker, fresh databases
and topics, the processes started anew and warmed up (decision 47). The embedded broker's fetch
cost grows with every record batch it holds, so on one system each step would also measure the
steps before it; QUICK's 8-s steps share one system (BENCH_SAGA_ONE_SYSTEM=1 does that in the
full run too).

A step is sustained when p99 < 1 s, no more than 1% of requests failed and the generator kept
the rate. A search step stops early once more than 1% of its planned orders have been PENDING
for over a second: its p99 is then certainly above 1 s. The fixed rates stop early only when 20%
are (a runaway backlog), so their percentiles cover most of the window.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, TextIO

import psycopg

from bench import env, memory, profiling, stack
from bench.loadgen import OpenLoop
from bench.stats import percentile, summary_ms
from orderflow.contexts_registry import ALL_CONTEXTS

P99_LIMIT_MS = 1000.0
# The processes of a running system, as the supervisor names them.
SERVICES = ("web", "worker", "beat", *(f"consumer-{c}" for c in ALL_CONTEXTS))


@dataclass(frozen=True)
class Plan:
    rates: tuple[int, ...]
    window: float  # seconds of arrivals per step (also the sustain window)
    drain: float  # seconds to wait for a step's orders to finish
    search_steps: int  # extra steps searching the highest sustained rate
    # A new system (broker, databases, processes) for every step, so no step measures the broker
    # the steps before it filled (decision 47); QUICK's 8-s steps share one, to stay short.
    fresh_system_per_step: bool

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        if quick:
            return cls(rates=(10, 50, 100), window=8.0, drain=15.0, search_steps=2, fresh_system_per_step=False)
        return cls(rates=(10, 50, 100), window=60.0, drain=60.0, search_steps=7, fresh_system_per_step=True)


# --- one step -----------------------------------------------------------------------------------------------


def _late_pending(conn: psycopg.Connection, since: float) -> int:
    """Orders of this step PENDING for over a second (`conn`: the orders database, autocommit)."""
    return conn.execute(
        "SELECT count(*) FROM orders_order WHERE status = 'PENDING' "
        "AND created_at >= to_timestamp(%s) AND created_at < now() - interval '1 second'",
        [since],
    ).fetchone()[0]


def _timelines(box: env.Sandbox, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per order: created, status, and (occurred, recorded) of each timeline entry type."""
    orders: dict[str, dict[str, Any]] = {}
    with box.connect("orders") as conn:
        for oid, created, status in conn.execute(
            "SELECT id::text, extract(epoch FROM created_at)::float8, status "
            "FROM orders_order WHERE id = ANY(%s::uuid[])",
            [ids],
        ):
            orders[oid] = {"created": created, "status": status}
        for oid, type_, occurred, recorded in conn.execute(
            "SELECT order_id::text, type, extract(epoch FROM occurred_at)::float8, "
            "extract(epoch FROM recorded_at)::float8 FROM orders_timelineentry WHERE order_id = ANY(%s::uuid[])",
            [ids],
        ):
            orders.setdefault(oid, {}).setdefault(type_, (occurred, recorded))
    return orders


SUBSCRIBERS = ("inventory", "payments", "orders", "notifications")


def _stages(box: env.Sandbox, since: float) -> dict[str, dict[str, Any]]:
    """Where an event's time goes, per (event type → consuming context), for the step's events:
    `relay` = outbox row written (`occurred_at`) → claimed by a relay (`published_at`, the claiming
    transaction's start), `deliver` = claimed → the consumer's transaction began (inbox
    `processed_at`): produce, broker, fetch and the consumer's queue."""
    written: dict[str, tuple[str, float, float | None]] = {}
    for context in SUBSCRIBERS:
        with box.connect(context) as conn:
            for event_id, type_, occurred, published in conn.execute(
                f"SELECT id::text, type, extract(epoch FROM occurred_at)::float8, "
                f"extract(epoch FROM published_at)::float8 FROM {context}_outboxevent "
                "WHERE occurred_at >= to_timestamp(%s)",
                [since],
            ):
                written[event_id] = (type_.split(".")[-2], occurred, published)
    stages: dict[str, dict[str, list[float]]] = {}
    for context in SUBSCRIBERS:
        with box.connect(context) as conn:
            rows = conn.execute(
                f"SELECT event_id, extract(epoch FROM processed_at)::float8 FROM {context}_inboxevent "
                "WHERE processed_at >= to_timestamp(%s)",
                [since],
            ).fetchall()
        for event_id, processed in rows:
            if event_id not in written or written[event_id][2] is None:
                continue
            type_, occurred, published = written[event_id]
            stage = stages.setdefault(f"{type_} → {context}", {"relay": [], "deliver": []})
            stage["relay"].append((published - occurred) * 1000)
            stage["deliver"].append((processed - published) * 1000)
    return {
        name: {"count": len(v["relay"]), **{k: summary_ms(v[k], (50, 99)) for k in ("relay", "deliver")}}
        for name, v in sorted(stages.items())
    }


def _batching(box: env.Sandbox, since: float, seconds: float) -> dict[str, dict[str, float]]:
    """Per context, over the step: relay runs (distinct `published_at`: a run stamps its rows with
    its transaction's start) and consumer transactions (distinct inbox `processed_at`, likewise),
    a second and the events each carried. At the saga's rates each costs a fixed amount of CPU
    whatever it carries, so these say how well that cost is shared."""
    out: dict[str, dict[str, float]] = {}
    for context in SUBSCRIBERS:
        with box.connect(context) as conn:
            runs, relayed = conn.execute(
                f"SELECT count(DISTINCT published_at), count(published_at) FROM {context}_outboxevent "
                "WHERE occurred_at >= to_timestamp(%s)",
                [since],
            ).fetchone()
            transactions, consumed = conn.execute(
                f"SELECT count(DISTINCT processed_at), count(*) FROM {context}_inboxevent "
                "WHERE processed_at >= to_timestamp(%s)",
                [since],
            ).fetchone()
        out[context] = {
            "relay_runs_per_s": round(runs / seconds, 1),
            "events_per_relay_run": round(relayed / runs, 2) if runs else 0.0,
            "consumer_transactions_per_s": round(transactions / seconds, 1),
            "events_per_consumer_transaction": round(consumed / transactions, 2) if transactions else 0.0,
        }
    return out


def _e2e_ms(record: dict[str, Any], orders: dict[str, dict[str, Any]]) -> float:
    """An accepted order's POST sent → CONFIRMED in ms; infinitely late if it never confirmed."""
    confirmed = orders.get(record["order_id"], {}).get("OrderConfirmed")
    return math.inf if confirmed is None else (confirmed[0] - record["sent"]) * 1000


def _analyse(records: list[dict[str, Any]], orders: dict[str, dict[str, Any]], rate: float) -> dict[str, Any]:
    accepted = [r for r in records if r.get("order_id")]
    e2e: list[float] = []
    hops: dict[str, list[float]] = {"request": [], "to_participants": [], "back_to_orders": []}
    for record in accepted:
        order = orders.get(record["order_id"], {})
        e2e.append(_e2e_ms(record, orders))
        confirmed = order.get("OrderConfirmed")
        if confirmed is None:
            continue
        replies = [order[t][0] for t in ("StockReserved", "PaymentAuthorized") if t in order]
        if "created" in order and len(replies) == 2:
            hops["request"].append((order["created"] - record["sent"]) * 1000)
            hops["to_participants"].append((max(replies) - order["created"]) * 1000)
            hops["back_to_orders"].append((confirmed[0] - max(replies)) * 1000)
    sent = sorted(r["sent"] for r in records)
    achieved = (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 and sent[-1] > sent[0] else 0.0
    statuses: dict[str, int] = {}
    for record in accepted:
        status = orders.get(record["order_id"], {}).get("status", "MISSING")
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "offered_per_s": rate,
        "achieved_per_s": round(achieved, 1),
        "requests": len(records),
        "accepted": len(accepted),
        "failed_requests": len(records) - len(accepted),
        "confirmed": sum(1 for v in e2e if not math.isinf(v)),
        "statuses": statuses,
        **summary_ms(e2e),
        "post_ms": summary_ms([(r["answered"] - r["sent"]) * 1000 for r in records]),
        "send_lag_p99_ms": round(percentile([(r["sent"] - r["scheduled"]) * 1000 for r in records], 99) or 0, 1),
        "hops_ms": {name: summary_ms(values, (50, 99)) for name, values in hops.items()},
        "latencies_ms": sorted(round(v, 1) for v in e2e if not math.isinf(v)),  # for the chart; dropped from JSON
    }


SEGMENT_S = 10.0  # the step's window is split into stretches of this many seconds of arrivals


def _segments(
    records: list[dict[str, Any]],
    orders: dict[str, dict[str, Any]],
    started: float,
    cpu_marks: list[tuple[float, dict[str, float]]],
) -> list[dict[str, Any]]:
    """The step stretch by stretch (SEGMENT_S of send time each): the orders sent in it, their
    p50/p99 (unconfirmed = infinitely late), and each process kind's cores over the same stretch
    (`cpu_marks`: (seconds since `started`, CPU seconds per kind so far), one every SEGMENT_S).
    A broker whose fetch grows with every stored batch shows here as latency and broker cores
    rising from one stretch to the next at the same offered rate."""
    out: list[dict[str, Any]] = []
    for (t0, cpu0), (t1, cpu1) in pairwise(cpu_marks):
        latencies = [_e2e_ms(r, orders) for r in records if r.get("order_id") and t0 <= r["sent"] - started < t1]
        span = t1 - t0
        out.append(
            {
                "from_s": round(t0, 1),
                "orders": len(latencies),
                **summary_ms(latencies, (50, 99)),
                "cpu_cores": {k: round((cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / span, 2) for k in sorted(cpu1)},
            }
        )
    return out


def run_step(
    box: env.Sandbox,
    base: str,
    tokens: list[str],
    rate: float,
    plan: Plan,
    profile: dict[str, int] | None = None,
    profile_dir: Path | None = None,
    abort_fraction: float = 0.01,
    sampler: memory.Sampler | None = None,
) -> dict[str, Any]:
    """Offer `rate` orders/s for the plan's window; measure; wait for the system to drain.

    The step stops early when more than `abort_fraction` of its planned orders have been PENDING
    for over a second (with 0.01 its p99 is then certainly above 1 s)."""
    bodies = stack.order_bodies()
    cpu_before, wall_before = (sampler.cpu_seconds(by_service=True) if sampler else {}), time.monotonic()
    loop = OpenLoop(f"{base}/api/orders/", bodies=bodies, tokens=tokens, rate=rate, seconds=plan.window).start()
    started = time.time()
    planned = int(rate * plan.window)
    aborted = False
    recorders = []
    if profile and profile_dir:
        for name, pid in profile.items():
            raw = profile_dir / f"saga-{int(rate)}-{name}.raw"
            # Consumers: wall clock (where a hop waits) unless BENCH_PROFILE_CONSUMERS=cpu (where
            # their CPU goes: only the thread holding the GIL is sampled).
            wall = name.startswith("consumer") and not profiling.consumers_on_cpu()
            recorder = profiling.record(
                pid,
                raw,
                idle=wall,
                gil=not wall and name.startswith("consumer"),
                subprocesses=name in ("web", "worker"),
            )
            recorder.__enter__()
            recorders.append((name, raw, recorder))
    cpu_marks: list[tuple[float, dict[str, float]]] = []  # for `segments`
    if sampler:
        cpu_marks.append((time.time() - started, sampler.cpu_seconds()))
    try:
        # One connection for the step's checks: a new one each second was a fork of a PostgreSQL
        # backend (and its authentication) a second, on the machine being measured.
        with box.connect("orders") as conn:
            while time.time() < started + plan.window + 0.5:
                time.sleep(1.0)
                if sampler and time.time() - started >= len(cpu_marks) * SEGMENT_S:
                    cpu_marks.append((time.time() - started, sampler.cpu_seconds()))
                if _late_pending(conn, started) > planned * abort_fraction:
                    loop.stop()
                    aborted = True
                    break
    finally:
        for _name, _raw, recorder in recorders:
            recorder.__exit__(None, None, None)
    records = loop.result(timeout=plan.window + 120)
    cpu_after, wall = (sampler.cpu_seconds(by_service=True) if sampler else {}), time.monotonic() - wall_before
    ids = [r["order_id"] for r in records if r.get("order_id")]
    stack.wait_status(box, ids, timeout=plan.drain)
    orders = _timelines(box, ids)
    result = _analyse(records, orders, rate)
    result["window_s"] = plan.window
    result["segments"] = _segments(records, orders, started, cpu_marks)
    result["stages_ms"] = _stages(box, started - 1.0)
    result["batching"] = _batching(box, started - 1.0, wall)
    # Cores each process kind, and each consumer, used while orders arrived (2 = the whole machine here).
    cores = {k: (cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0)) / wall for k in cpu_after}
    by_kind: dict[str, float] = {}
    for service, used in cores.items():
        by_kind[memory.kind_of(service)] = by_kind.get(memory.kind_of(service), 0.0) + used
    result["cpu_cores"] = {k: round(v, 2) for k, v in sorted(by_kind.items())}
    result["consumer_cores"] = {
        k.removeprefix("consumer-"): round(v, 2) for k, v in sorted(cores.items()) if k.startswith("consumer-")
    }
    result["aborted_early"] = aborted
    result["arrivals_s"] = round(max((r["sent"] for r in records), default=started) - started, 1)
    p99 = result["p99_ms"]  # None when an unconfirmed (infinitely late) order reaches the 99th percentile
    result["sustained"] = bool(
        not aborted
        and p99 is not None
        and p99 < P99_LIMIT_MS
        and result["failed_requests"] <= 0.01 * max(1, result["requests"])
        and result["achieved_per_s"] >= 0.95 * rate
    )
    if recorders:
        result["profiles"] = {name: profiling.summarize(raw) for name, raw, _ in recorders}
    env.log(
        f"saga {rate:>5g}/s: p50 {result['p50_ms']} p95 {result['p95_ms']} p99 {result['p99_ms']} ms, "
        f"{result['confirmed']}/{result['accepted']} confirmed{' (stopped early)' if aborted else ''}"
        f" -> {'sustained' if result['sustained'] else 'not sustained'}"
    )
    result["drained"] = quiesce(box, timeout=plan.drain)
    return result


def quiesce(box: env.Sandbox, timeout: float) -> bool:
    """Wait until no order is PENDING and every confirmed one has its stock committed and payment
    captured (the saga's last replies), so the next step starts on an idle system."""
    deadline = time.monotonic() + timeout
    with box.connect("orders") as conn:
        while time.monotonic() < deadline:
            busy = conn.execute(
                "SELECT count(*) FROM orders_order WHERE status = 'PENDING' OR (status = 'CONFIRMED' "
                "AND (stock_status <> 'COMMITTED' OR payment_status <> 'CAPTURED'))"
            ).fetchone()[0]
            if not busy:
                time.sleep(1.0)  # notifications and the last relays
                return True
            time.sleep(0.5)
    env.log(f"saga: the system did not drain within {timeout:g} s")
    return False


# --- the whole benchmark -------------------------------------------------------------------------------------


def _next_rate(low: float, high: float | None) -> float | None:
    """Double until a rate fails, then bisect (to 5 orders/s or 10%)."""
    if high is None:
        return max(10.0, round(low * 2 / 5) * 5)
    if high - low <= max(5.0, 0.1 * low):
        return None
    middle = round((low + high) / 2 / 5) * 5
    return middle if low < middle < high else None


@dataclass
class _System:
    """One running system: its sandbox (databases, topics), the supervised processes, customers."""

    box: env.Sandbox
    base: str
    supervisor: Any
    tokens: list[str]
    warm_up_s: float


@contextmanager
def _system(infra: env.Infra, out: TextIO) -> Iterator[_System]:
    with env.sandbox(infra, "saga") as box:
        stack.seed(box, stock=True)
        with stack.running(box, full=True, out=out) as system:
            tokens = [stack.customer_token(system.base) for _ in range(8)]
            warm_s = stack.warm_up(box, system.base, tokens[0])
            quiesce(box, timeout=30)
            yield _System(box, system.base, system.supervisor, tokens, warm_s)


def run(infra: env.Infra, *, quick: bool, profile_dir: Path | None) -> dict[str, Any]:
    plan = Plan.for_mode(quick)
    if os.environ.get("BENCH_SAGA_ONE_SYSTEM"):
        plan = replace(plan, fresh_system_per_step=False)
    profiled_services = ("web", "worker", *(f"consumer-{c}" for c in SUBSCRIBERS))
    system: _System | None = None
    servers: dict[str, int | None] = {}

    def roots() -> dict[str, int | None]:  # the running system's pids, looked up at each sample
        if system is None:
            return {}
        return {**{s: system.supervisor.pid(s) for s in SERVICES}, **servers}

    sampler = memory.Sampler(roots)
    steps: list[dict[str, Any]] = []
    searched: list[dict[str, Any]] = []
    search_note = ""
    warm_ups: list[float] = []
    restarts: dict[str, int] = dict.fromkeys(SERVICES, 0)

    with (infra.log_dir / "saga.log").open("a") as out, ExitStack() as running:

        def fresh() -> _System:
            """The system for the next step: a new one per step when the plan says so."""
            nonlocal system
            if system is not None and not plan.fresh_system_per_step:
                return system
            if system is not None:
                for s in SERVICES:
                    restarts[s] += system.supervisor.restarts(s)
                running.close()
                env.fresh_broker(infra)
            system = running.enter_context(_system(infra, out))
            warm_ups.append(system.warm_up_s)
            servers.clear()
            servers.update(memory.server_pids(infra.components, env.VAR_DIR))
            if not sampler.started:
                sampler.start()
            return system

        def step(rate: float, *, fixed: bool) -> dict[str, Any]:
            sys_ = fresh()
            if fixed and not plan.fresh_system_per_step and (steps or searched):
                if not (steps + searched)[-1]["drained"]:
                    quiesce(sys_.box, timeout=2 * plan.drain)
            # The fixed rates run their whole window unless the backlog runs away (20% late).
            profile = None
            if profile_dir and fixed and rate in (10, 50):
                profile = {s: sys_.supervisor.pid(s) for s in profiled_services}
            return run_step(
                sys_.box, sys_.base, sys_.tokens, rate, plan, profile, profile_dir, 0.2 if fixed else 0.01, sampler
            )

        # The lowest fixed rate, then the search for the highest sustained rate, then the higher
        # fixed rates. On one system for all steps (QUICK) this order matters: a step far above
        # capacity leaves the embedded broker slower for the rest of the run (its CPU grew from 0.44
        # to 0.75 cores at lower rates after the 100/s step), and every step after it would measure
        # that. The full run gives each step a system of its own (decision 47).
        steps.append(step(plan.rates[0], fixed=True))
        low = plan.rates[0] if steps[0]["sustained"] else 0.0
        high = None if steps[0]["sustained"] else plan.rates[0]
        for _ in range(plan.search_steps):
            rate = _next_rate(low, high)
            if rate is None:
                break
            previous = (steps + searched)[-1]
            if (
                not plan.fresh_system_per_step
                and not previous["drained"]
                and not quiesce(system.box, timeout=2 * plan.drain)
            ):
                search_note = f"stopped before {rate:g}/s: the previous step's backlog did not drain"
                env.log(f"saga: {search_note}")
                break
            result = step(rate, fixed=False)
            searched.append(result)
            if result["sustained"]:
                low = max(low, rate)
            else:
                high = rate if high is None else min(high, rate)
        for rate in plan.rates[1:]:
            steps.append(step(rate, fixed=True))
        # A fixed rate sustained above the search's best counts too.
        low = max([low, *(s["offered_per_s"] for s in steps if s["sustained"])])
        failed = [s["offered_per_s"] for s in [*steps, *searched] if not s["sustained"] and s["offered_per_s"] > low]
        high = min(failed, default=None)
        sampler.stop()
        for s in SERVICES:
            restarts[s] += system.supervisor.restarts(s)
    latencies = {str(s["offered_per_s"]): s.pop("latencies_ms") for s in [*steps, *searched]}
    return {
        "rates": [_public(s) for s in steps],
        "search": [_public(s) for s in searched],
        "max_sustained_per_s": low,
        "first_unsustained_per_s": high,
        "search_note": search_note,
        "window_s": plan.window,
        "fresh_system_per_step": plan.fresh_system_per_step,
        "sustain_criteria": "p99 < 1 s over the window, ≤ 1% failed requests, ≥ 95% of the offered rate sent",
        "warm_up_s": round(max(warm_ups), 1),
        "restarts": restarts,
        "memory": sampler.report(),
        "latencies_ms": latencies,
        "method": __doc__.split("\n\n", 2)[2].replace("\n", " ").strip(),
    }


def _public(step: dict[str, Any]) -> dict[str, Any]:
    keys = ("offered_per_s", "p50_ms", "p95_ms", "p99_ms")
    return {**{k: step[k] for k in keys}, **{k: v for k, v in step.items() if k not in keys}}

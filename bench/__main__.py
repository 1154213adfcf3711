"""`python -m bench [--quick] [--only relay,consumer,http,saga] [--profile]`

Starts (or uses, from DATABASE_URL / REDIS_URL / KAFKA_BOOTSTRAP_SERVERS) the servers, runs each
benchmark on its own fresh databases and topics, and writes bench/results/latest.json, latest.png
and the figures block of docs/benchmarks.md.

--only     run some benchmarks; results go to bench/results/partial.json (latest.json untouched)
--profile  also record py-spy profiles of the timed phases and count SQL statements per operation:
           summaries in bench/results/profiles/<benchmark>.txt, results in bench/results/profiles/run.json
           (latest.json untouched: profiling slows what it watches a little)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from typing import Any

from bench import env, profiling, report

BENCHES = ("relay", "consumer", "http", "saga")


def _sizes(quick: bool) -> dict[str, list[str]]:
    if quick:
        return {"relay": ["--n", "30000", "--no-tuned-reference"], "consumer": ["--n", "3000", "--timeout", "60"]}
    return {"relay": ["--n", "100000"], "consumer": ["--n", "100000", "--timeout", "300"]}


def run_bench(name: str, infra: env.Infra, args: argparse.Namespace) -> dict[str, Any]:
    profile_dir = infra.log_dir / "profiles" if args.profile else None
    extra = ["--profile-dir", str(profile_dir)] if profile_dir else []
    if name in ("relay", "consumer"):
        with env.sandbox(infra, name) as box:
            return box.task(f"bench.{name}", [*_sizes(args.quick)[name], *extra])
    if name == "http":
        from bench import http

        return http.run(infra, quick=args.quick, profile_dir=profile_dir)
    from bench import saga

    return saga.run(infra, quick=args.quick, profile_dir=profile_dir)


def _profile_texts(results: dict[str, Any]) -> dict[str, str]:
    """One text per profiled benchmark: bench/results/profiles/<name>.txt."""
    texts: dict[str, list[str]] = {}
    relay = results.get("relay") or {}
    for run in relay.get("runs", []):
        if "profile" in run:
            title = f"relay: {run['kind']}, {run['events']} events (wall clock, --idle)"
            texts.setdefault("relay", []).append(profiling.format_summary(title, run["profile"]))
    if "profile" in (results.get("consumer") or {}):
        kind = "on-CPU samples" if profiling.consumers_on_cpu() else "wall clock, --idle"
        title = f"consumer: inventory ({kind})"
        texts.setdefault("consumer", []).append(profiling.format_summary(title, results["consumer"]["profile"]))
    for name, summary in ((results.get("http") or {}).get("profiles") or {}).items():
        title = f"http: gunicorn workers under {name} load (Python CPU: threads holding the GIL)"
        texts.setdefault("http", []).append(profiling.format_summary(title, summary))
    for step in (results.get("saga") or {}).get("rates", []):
        for name, summary in (step.get("profiles") or {}).items():
            if not name.startswith("consumer"):
                kind = "CPU; C waits count as busy"
            elif profiling.consumers_on_cpu():
                kind = "Python CPU: threads holding the GIL"
            else:
                kind = "wall clock, --idle"
            title = f"saga {step['offered_per_s']}/s: {name} ({kind})"
            texts.setdefault("saga", []).append(profiling.format_summary(title, summary))
    for operation, counted in (results.get("queries") or {}).items():
        if not isinstance(counted, dict) or "by_alias" not in counted:
            texts.setdefault("queries", []).append(f"## SQL statements: {operation}: {counted}")
            continue
        rows = [f"## SQL statements: {operation}: {counted['statements']}"]
        for alias, data in counted["by_alias"].items():
            rows.append(f"{alias} ({data['count']}):")
            rows += [f"  {n:3d}  {shape}" for shape, n in data["shapes"].items()]
        texts.setdefault("queries", []).append("\n".join(rows))
    return {name: "\n\n".join(parts) + "\n" for name, parts in texts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short windows (< 3 minutes)")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHES))
    parser.add_argument("--profile", action="store_true", help="record py-spy profiles too")
    args = parser.parse_args(argv)
    selected = [b.strip() for b in args.only.split(",")] if args.only else list(BENCHES)
    unknown = set(selected) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    started = time.monotonic()
    infra = env.start_infra()
    results: dict[str, Any] = {
        "quick": args.quick,
        "profiled": args.profile,
        "experiment": os.environ.get("BENCH_EXPERIMENT") or None,
        "environment": {
            k: os.environ[k]
            for k in (
                "KAFKA_EXTRA_CONFIG",
                "KAFKA_CONSUMER_FETCH_WAIT_MAX_MS",
                "KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT",
                "WEB_CONCURRENCY",
                "GUNICORN_CMD_ARGS",
                "BENCH_LOADGEN",
                "BENCH_SAGA_ONE_SYSTEM",
            )
            if k in os.environ
        },
        "load_avg_before": os.getloadavg(),
        "code": report.code_version(),
    }
    try:
        results["machine"] = report.machine(infra)
        for n, name in enumerate(selected):
            began = time.monotonic()
            env.log(f"=== {name} ===")
            if n:
                env.fresh_broker(infra)
            try:
                results[name] = run_bench(name, infra, args)
            except Exception as exc:  # keep the other benchmarks' figures
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results.setdefault(name, {})["bench_seconds"] = round(time.monotonic() - began, 1)
        if args.profile:
            env.log("=== statements per operation ===")
            try:
                with env.sandbox(infra, "queries") as box:
                    results["queries"] = box.task("bench.queries", [])
            except Exception as exc:
                traceback.print_exc()
                results["queries"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        infra.stop()
    results["memory_mb"] = report.memory_mb(results.get("saga"))
    results["targets"] = report.targets(results)
    results["load_avg_after"] = os.getloadavg()  # 1/5/15-minute load: other work on the machine shows here
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["logs"] = str(infra.log_dir.relative_to(env.ROOT))
    out_dir = env.RESULTS_DIR
    if args.profile:
        out_dir, stem = env.RESULTS_DIR / "profiles", "run"
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in _profile_texts(results).items():
            (out_dir / f"{name}.txt").write_text(f"# {time.strftime('%Y-%m-%d %H:%M')}, quick={args.quick}\n\n{text}")
    else:
        stem = "latest" if not (args.only or results["experiment"] or results["environment"]) else "partial"
    path = report.write(results, out_dir, stem=stem, update_docs=stem == "latest")
    env.log(f"wrote {path.relative_to(env.ROOT)} ({results['duration_s']} s)")
    for name, target in results["targets"].items():
        verdict = {True: "pass", False: "MISS", None: "-"}[target["pass"]]
        env.log(f"  {verdict:4s} {name}: {target['measured']} (target {target['target']})")
    for name in selected:
        for error in (results.get(name) or {}).get("errors") or []:
            env.log(f"  CHECK {name}: {error}")
    failed = [n for n in selected if "error" in (results.get(n) or {})]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""HTTP load: closed loop (fixed concurrency, for throughput) and open loop (fixed arrival rate,
for latency under load).

Closed loop uses `wrk` when it is installed (a compiled generator: on two cores a Python one
would take CPU from the server it measures) and otherwise — or with BENCH_LOADGEN=python — a
multi-process Python generator (4 processes × 4 threads, one keep-alive connection each).

Open loop is Python: it sends each request at its scheduled time from a pool of keep-alive
connections in its own process, and records the scheduled, sent and answered times, so a late
send is visible rather than hidden.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.stats import percentile

SPAWN = multiprocessing.get_context("spawn")


@dataclass
class LoadResult:
    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # non-2xx answers and socket errors
    worker_restarts: int = 0  # gunicorn workers booted during the run (filled in by the caller)
    cpu_cores: dict[str, float] = field(default_factory=dict)  # cores per process kind (filled in by the caller)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def closed_loop(
    url: str, *, method: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float, work_dir: Path
) -> LoadResult:
    if shutil.which("wrk") and os.environ.get("BENCH_LOADGEN") != "python":
        return _wrk(url, method, body, headers, concurrency, seconds, work_dir)
    return _python_closed_loop(url, method, body, headers, concurrency, seconds)


# --- wrk ---------------------------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = [[{body}]]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests":%d,"duration_us":%d,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _wrk(
    url: str, method: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float, work_dir: Path
) -> LoadResult:
    script = work_dir / f"wrk-{method.lower()}-{abs(hash(url)) % 10_000}.lua"
    script.write_text(
        _WRK_SCRIPT.format(
            method=method,
            body=body.decode(),
            headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
        )
    )
    argv = [
        "wrk",
        "-t2",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    match = re.search(r"BENCH_JSON (\{.*\})", out)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    data = json.loads(match.group(1))
    duration = data["duration_us"] / 1e6
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        tool="wrk",
        requests=data["requests"],
        seconds=round(duration, 2),
        rps=round(data["requests"] / duration, 1),
        p50_ms=round(data["p50_us"] / 1000, 2),
        p90_ms=round(data["p90_us"] / 1000, 2),
        p99_ms=round(data["p99_us"] / 1000, 2),
        max_ms=round(data["max_us"] / 1000, 2),
        errors=errors,
    )


# --- Python closed loop -----------------------------------------------------------------------------------


def _closed_worker(url: str, method: str, body: bytes, headers: dict[str, str], threads: int, seconds: float):
    parts = urlsplit(url)
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def loop() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine: list[float] = []
        failed = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                conn.request(method, parts.path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 300:
                    failed += 1
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, errors[0]


def _python_closed_loop(
    url: str, method: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float
) -> LoadResult:
    processes = 4
    with SPAWN.Pool(processes) as pool:
        started = time.perf_counter()
        parts = pool.starmap(
            _closed_worker, [(url, method, body, headers, concurrency // processes, seconds)] * processes
        )
        elapsed = time.perf_counter() - started
    latencies = [latency * 1000 for part in parts for latency in part[0]]
    errors = sum(part[1] for part in parts)
    return LoadResult(
        tool="python (4 processes x 4 threads, http.client keep-alive)",
        requests=len(latencies),
        seconds=round(min(elapsed, seconds), 2),
        rps=round(len(latencies) / seconds, 1),
        p50_ms=round(percentile(latencies, 50) or 0, 2),
        p90_ms=round(percentile(latencies, 90) or 0, 2),
        p99_ms=round(percentile(latencies, 99) or 0, 2),
        max_ms=round(max(latencies, default=0), 2),
        errors=errors,
    )


# --- open loop -----------------------------------------------------------------------------------------------


def _open_loop(
    url: str, bodies: list[bytes], tokens: list[str], rate: float, seconds: float, connections: int, stop, out
) -> None:
    """Child process: send POSTs at `rate`/s for `seconds` (or until `stop` is set); put the records on `out`."""
    parts = urlsplit(url)
    jobs: queue.Queue = queue.Queue()
    records: list[dict[str, Any]] = []
    lock = threading.Lock()

    def sender() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while True:
            job = jobs.get()
            if job is None:
                return
            index, scheduled = job
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {tokens[index % len(tokens)]}"}
            sent = time.time()
            record: dict[str, Any] = {"i": index, "scheduled": scheduled, "sent": sent}
            try:
                conn.request("POST", parts.path, body=bodies[index % len(bodies)], headers=headers)
                response = conn.getresponse()
                payload = response.read()
                record["status"] = response.status
                if response.status == 202:
                    record["order_id"] = json.loads(payload)["id"]
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                record["status"] = 0
                record["error"] = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            record["answered"] = time.time()
            with lock:
                records.append(record)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    start = time.time() + 0.2
    total = int(rate * seconds)
    for index in range(total):
        scheduled = start + index / rate
        delay = scheduled - time.time()
        if delay > 0:
            time.sleep(delay)
        if stop.is_set():
            break
        jobs.put((index, scheduled))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join(timeout=60)
    out.put(records)


class OpenLoop:
    """An open-loop run in its own process: `start()`, optionally `stop()` early, then `result()`."""

    def __init__(self, url: str, *, bodies: list[bytes], tokens: list[str], rate: float, seconds: float) -> None:
        self.rate, self.seconds = rate, seconds
        self._stop = SPAWN.Event()
        self._out = SPAWN.Queue()
        connections = max(8, min(128, int(rate * 0.25)))  # enough to absorb 250 ms answers at this rate
        self._proc = SPAWN.Process(
            target=_open_loop,
            args=(url, bodies, tokens, rate, seconds, connections, self._stop, self._out),
            daemon=True,
        )

    def start(self) -> OpenLoop:
        self._proc.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def result(self, timeout: float = 120) -> list[dict[str, Any]]:
        """The records (read before joining: the child exits only once its queue is drained)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                records = self._out.get(timeout=1)
                break
            except queue.Empty:
                if not self._proc.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the open-loop generator ended without results (exit {self._proc.exitcode})")
        self._proc.join(10)
        return records

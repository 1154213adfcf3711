"""Peak resident memory (RSS) and CPU time per process kind, sampled while a benchmark runs.

A kind is one supervised service: `web` (the gunicorn master and its workers), `worker` (the Celery
main process and its pool), `beat`, and `consumer` (one process per context). For each kind the
sampler keeps the peak of the sum over the kind's process tree (what the kind costs the machine;
forked processes share pages, so sums over-count them a little) and the peak of its largest single
process (what one instance needs). The servers (PostgreSQL, Redis, the broker) are sampled too.

CPU: the user + system seconds of every process seen, per kind (a process keeps its last reading
after it exits; one that lives less than a sampling interval, e.g. a PostgreSQL backend of a
short connection, is missed), so `cpu_seconds()` before and after a step gives the cores each kind
used during it.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psutil

MB = 1024 * 1024


def kind_of(service: str) -> str:
    return "consumer" if service.startswith("consumer-") else service


class Sampler:
    """`roots()` returns {service name: pid}; the sampler walks each pid's process tree."""

    def __init__(self, roots: Callable[[], dict[str, int | None]], interval: float = 0.5) -> None:
        self.roots = roots
        self.interval = interval
        self.peak_total: dict[str, float] = defaultdict(float)  # kind -> MB, sum over its instances' trees
        self.peak_process: dict[str, float] = defaultdict(float)  # kind -> MB, largest single process
        self.peak_instance: dict[str, float] = defaultdict(float)  # service -> MB, its tree
        self.processes: dict[str, int] = defaultdict(int)  # kind -> processes seen at the peak
        self.samples = 0
        self._cpu: dict[int, tuple[str, float]] = {}  # pid -> (service, user + system seconds)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        totals: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for service, pid in self.roots().items():
            if pid is None:
                continue
            kind = kind_of(service)
            try:
                root = psutil.Process(pid)
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            tree = 0.0
            for proc in members:
                try:
                    rss = proc.memory_info().rss / MB
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                with self._lock:
                    self._cpu[proc.pid] = (service, times.user + times.system)
                tree += rss
                counts[kind] += 1
                self.peak_process[kind] = max(self.peak_process[kind], rss)
            totals[kind] += tree
            self.peak_instance[service] = max(self.peak_instance[service], tree)
        for kind, total in totals.items():
            if total > self.peak_total[kind]:
                self.peak_total[kind] = total
                self.processes[kind] = counts[kind]
        self.samples += 1

    def cpu_seconds(self, *, by_service: bool = False) -> dict[str, float]:
        """CPU seconds used so far per kind, or per service (`consumer-orders`, ...) with
        `by_service` (take a fresh sample first)."""
        self.sample()
        totals: dict[str, float] = defaultdict(float)
        with self._lock:
            for service, seconds in self._cpu.values():
                totals[service if by_service else kind_of(service)] += seconds
        return dict(totals)

    def report(self) -> dict[str, Any]:
        return {
            "peak_total_mb": {k: round(v, 1) for k, v in sorted(self.peak_total.items())},
            "peak_single_process_mb": {k: round(v, 1) for k, v in sorted(self.peak_process.items())},
            "peak_per_instance_mb": {k: round(v, 1) for k, v in sorted(self.peak_instance.items())},
            "processes_at_peak": dict(sorted(self.processes.items())),
            "samples": self.samples,
            "interval_s": self.interval,
        }


def server_pids(infra_components: list[Any], var_dir: Any) -> dict[str, int | None]:
    """The embedded servers' pids (None for servers the environment gave us)."""
    import json

    pids: dict[str, int | None] = {}
    names = {c.name for c in infra_components}
    if "postgres" in names:
        try:
            pids["postgres"] = int((var_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    if "redis" in names:
        try:
            pids["redis"] = int((var_dir / "redis" / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            pass
    if "kafka" in names:
        try:
            pids["kafka"] = int(json.loads((var_dir / "kafka" / "tansu.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pass
    return pids

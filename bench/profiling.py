"""py-spy around a benchmark's timed phase, and a plain-text summary of what dominated.

`record(pid, out)` attaches `py-spy record --format raw` (collapsed stacks) to a running process
and stops it with SIGINT when the block ends. `summarize(out)` turns the stacks into the top
functions by self time (the leaf frame) and by inclusive time (anywhere on the stack), as
percentages of the samples — with `--idle` the samples are wall-clock time, waits included.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orderflow.stack.supervisor import resolve_argv


def consumers_on_cpu() -> bool:
    """BENCH_PROFILE_CONSUMERS=cpu: profile consumers where their CPU goes (on-CPU samples)
    instead of the default wall clock (where they wait)."""
    return os.environ.get("BENCH_PROFILE_CONSUMERS") == "cpu"


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@contextmanager
def record(
    pid: int, out: Path, *, idle: bool = True, subprocesses: bool = False, rate: int = 100, gil: bool = False
) -> Iterator[None]:
    """Sample `pid` (and its children with `subprocesses`) while the block runs.

    idle: wall clock (waits included); gil: only threads holding the GIL, i.e. Python CPU — for
    multi-threaded servers, where a thread blocked in a C call (psycopg waiting for PostgreSQL)
    would otherwise count as busy."""
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = resolve_argv(["py-spy"]) + [
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--nonblocking",
        "--rate",
        str(rate),
        "--output",
        str(out),
    ]
    if idle:
        argv.append("--idle")
    if subprocesses:
        argv.append("--subprocesses")
    if gil:
        argv.append("--gil")
    err = out.with_suffix(".log").open("wb")
    proc = subprocess.Popen(argv, stdout=err, stderr=subprocess.STDOUT)
    time.sleep(0.3)  # attach before the measured work starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        err.close()


_PROJECT = tuple(f"({p}" for p in ("orderflow/", "contexts/", "contracts/"))
_HARNESS = ("(bench/task.py)", "(<frozen runpy>)", "(bench/relay.py)", "(bench/consumer.py)")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function with file, the same with the line) per frame, outermost first."""
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw)
        if match is None:
            frames.append((raw, raw))
            continue
        where = _short(match["file"])
        line = f":{match['line']}" if match["line"] else ""
        frames.append((f"{match['func']} ({where})", f"{match['func']} ({where}{line})"))
    return frames


def summarize(path: Path, *, focus: str | None = None, top: int = 12) -> dict[str, Any]:
    """Top leaf lines (self) and functions anywhere on the stack (inclusive), in % of samples.

    `focus` keeps only stacks containing it (e.g. the consumer loop's frame, to leave out a
    monitoring thread)."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    project: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"samples": 0, "error": f"no profile at {path}"}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if focus and focus not in stack:
            continue
        n = int(count)
        frames = [f for f in _frames(stack) if not f[0].startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        self_counts[frames[-1][1]] += n  # the leaf, with its line: where exactly the time went
        # The innermost line of project code: which of our statements the time (and waits) belong to.
        ours = [f[1] for f in frames if any(p in f[0] for p in _PROJECT)]
        project[ours[-1] if ours else "(outside project code)"] += n
        for function in {f[0] for f in frames}:
            if not function.endswith(_HARNESS):  # the bench's own wrapper frames say nothing
                inclusive[function] += n

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "pct": round(100 * c / total, 1)} for f, c in counter.most_common(top)] if total else []

    trunk = {f for f, c in inclusive.items() if c >= 0.995 * total}  # frames under every sample say nothing
    for frame in trunk:
        del inclusive[frame]
    return {
        "samples": total,
        "file": str(path),
        "self": table(self_counts),
        "project_lines": table(project),
        "inclusive": table(inclusive),
    }


def format_summary(title: str, summary: dict[str, Any], lines: int = 10) -> str:
    out = [f"## {title} ({summary.get('samples', 0)} samples)"]
    for kind in ("self", "project_lines", "inclusive"):
        out.append(f"{kind}:")
        out += [f"  {row['pct']:5.1f}%  {row['function']}" for row in summary.get(kind, [])[:lines]]
    return "\n".join(out)

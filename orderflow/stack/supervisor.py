"""Run the stack's processes the way a container orchestrator would, in one terminal.

Each process gets its own process group (so a stop reaches everything it forked, e.g. gunicorn's
and Celery's workers), its output merged and prefixed per line (`web       | ...`), and a restart
with backoff when it exits on its own: 0.5 s doubling to 5 s, back to 0.5 s once it has run 30 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

BACKOFF_START = 0.5
BACKOFF_MAX = 5.0
HEALTHY_AFTER = 30.0
_COLORS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94", "91")


def resolve_argv(argv: Sequence[str]) -> list[str]:
    """`python` is this interpreter; other bare names (gunicorn, celery, ruff...) come from its bin
    directory when they are there, so the stack runs the venv's tools without activating it."""
    argv = list(argv)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif os.sep not in argv[0]:
        candidate = Path(sys.executable).parent / argv[0]
        if candidate.exists():
            argv[0] = str(candidate)
    return argv


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # The group id is the leader's pid; the group may outlive its leader (orphaned workers).
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class _Service:
    name: str
    argv: list[str]
    extra_env: dict[str, str]
    color: str
    proc: subprocess.Popen | None = None
    thread: threading.Thread | None = None
    restarts: int = 0
    history: list[int] = field(default_factory=list)  # pids, oldest first


class Supervisor:
    def __init__(self, env: dict[str, str], cwd: Path, out: TextIO = sys.stdout, restart: bool = True) -> None:
        self.env = dict(env)
        self.cwd = Path(cwd)
        self.out = out
        self.restart = restart
        self._lock = threading.Lock()  # services, one-shots, started/stopping transitions
        self._out_lock = threading.Lock()  # whole lines only
        self._services: dict[str, _Service] = {}
        self._oneshots: set[subprocess.Popen] = set()
        self._started = False
        self._stopping = threading.Event()
        self._width = len("stack")
        isatty = getattr(out, "isatty", None)
        self._colored = bool(isatty and isatty())

    # --- output -----------------------------------------------------------------------------------

    def _prefix(self, name: str, color: str) -> str:
        label = f"{name:<{self._width}} | "
        return f"\033[{color}m{label}\033[0m" if self._colored else label

    def _emit(self, name: str, color: str, line: str) -> None:
        with self._out_lock:
            self.out.write(self._prefix(name, color) + line + "\n")
            self.out.flush()

    def log(self, message: str, name: str = "stack") -> None:
        """A line from the stack itself, under `name`'s prefix."""
        svc = self._services.get(name)
        self._emit(name, svc.color if svc else "1", f"*** {message}" if svc else message)

    def _pump(self, name: str, color: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                self._emit(name, color, raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _spawn(
        self, name: str, color: str, argv: list[str], extra_env: dict[str, str]
    ) -> tuple[subprocess.Popen, threading.Thread]:
        self._width = max(self._width, len(name))
        proc = subprocess.Popen(
            resolve_argv(argv),
            cwd=self.cwd,
            env={**self.env, "PYTHONUNBUFFERED": "1", **extra_env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,  # its own group: signals reach its children; a terminal Ctrl-C does not
        )
        pump = threading.Thread(target=self._pump, args=(name, color, proc), name=f"out-{name}", daemon=True)
        pump.start()
        return proc, pump

    # --- long-running processes -----------------------------------------------------------------

    def add(self, name: str, argv: Sequence[str], extra_env: dict[str, str] | None = None) -> None:
        with self._lock:
            if name in self._services:
                raise ValueError(f"process {name!r} already added")
            svc = _Service(name, list(argv), dict(extra_env or {}), _COLORS[len(self._services) % len(_COLORS)])
            self._services[name] = svc
            self._width = max(self._width, len(name))
            if self._started and not self._stopping.is_set():
                self._launch(svc)

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for svc in self._services.values():
                self._launch(svc)

    def _launch(self, svc: _Service) -> None:
        svc.thread = threading.Thread(target=self._watch, args=(svc,), name=f"watch-{svc.name}", daemon=True)
        svc.thread.start()

    def _watch(self, svc: _Service) -> None:
        delay = BACKOFF_START
        while True:
            with self._lock:  # stop() holds it while it collects the processes to signal
                if self._stopping.is_set():
                    return
                try:
                    svc.proc, pump = self._spawn(svc.name, svc.color, svc.argv, svc.extra_env)
                except OSError as exc:
                    svc.proc, pump = None, None
                    self.log(f"cannot start {svc.argv[0]}: {exc}", svc.name)
                else:
                    svc.history.append(svc.proc.pid)
            began = time.monotonic()
            code = svc.proc.wait() if svc.proc else 127
            if pump is not None:
                pump.join(timeout=1)  # its last lines before our note about the exit
            if self._stopping.is_set():
                return
            if svc.proc:
                _signal_group(svc.proc, signal.SIGKILL)  # leftovers (e.g. orphaned workers holding the port)
            if not self.restart:
                self.log(f"exited with {describe_exit(code)}", svc.name)
                return
            if time.monotonic() - began >= HEALTHY_AFTER:
                delay = BACKOFF_START
            svc.restarts += 1
            self.log(
                f"exited with {describe_exit(code)}; restarting in {delay:g} s (restart #{svc.restarts})", svc.name
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX)

    def pid(self, name: str) -> int | None:
        proc = self._services[name].proc
        return proc.pid if proc is not None else None

    def alive(self, name: str) -> bool:
        proc = self._services[name].proc
        return proc is not None and proc.poll() is None

    def restarts(self, name: str) -> int:
        return self._services[name].restarts

    # --- one-shot steps ---------------------------------------------------------------------------

    def run_once(self, name: str, argv: Sequence[str], extra_env: dict[str, str] | None = None) -> int:
        """Run a step to completion with prefixed output; its exit code. Interrupting the caller
        (Ctrl-C, or stop() from another thread) stops the step too."""
        with self._lock:
            if self._stopping.is_set():
                return -signal.SIGTERM
            proc, pump = self._spawn(name, "1", list(argv), dict(extra_env or {}))
            self._oneshots.add(proc)
        try:
            code = proc.wait()
            pump.join(timeout=1)
            return code
        except BaseException:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)
            raise
        finally:
            with self._lock:
                self._oneshots.discard(proc)

    # --- stopping ---------------------------------------------------------------------------------

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM every process group, wait up to `timeout` seconds, SIGKILL what is left."""
        with self._lock:
            self._stopping.set()
            procs = [svc.proc for svc in self._services.values() if svc.proc is not None] + list(self._oneshots)
            threads = [svc.thread for svc in self._services.values() if svc.thread is not None]
        running = [p for p in procs if p.poll() is None]
        if running:
            self.log(f"stopping {len(running)} process(es)")
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in procs:
            if proc.poll() is None:
                self.log(f"pid {proc.pid} did not stop within {timeout:g} s: killing it")
            _signal_group(proc, signal.SIGKILL)  # also members that outlived their leader
        for proc in procs:
            proc.wait()
        for thread in threads:
            thread.join(timeout=2)

    # --- readiness ----------------------------------------------------------------------------------

    def wait_ready(self, url: str, timeout: float) -> bool:
        """Poll `url` until it answers 200 (True), `timeout` passes or stop() is called (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if self._stopping.wait(0.5):
                return False
        return False

"""`python -m orderflow.stack run | services | test [pytest args]`: the dev stack's commands.

run       the whole system on this machine: embedded servers for whatever the environment does not
          name (data in ./var, reused next time), the one-shot steps, then web, worker, beat and one
          Kafka consumer per hosted context, restarted if they exit. Ctrl-C stops everything.
services  only the servers; prints `export ...` lines to run processes one by one.
test      lint, import contracts, schema check, then pytest against real servers in ./var/test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orderflow.contexts_registry import parse_hosted
from orderflow.stack import processes
from orderflow.stack.components import Component, StackError, resolve_environment
from orderflow.stack.supervisor import Supervisor, resolve_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
USAGE = __doc__.split("\n\n", 1)[1]
READY_TIMEOUT = 120.0


class Interrupted(BaseException):
    """SIGINT/SIGTERM/SIGHUP while the stack starts or runs: unwind and stop what was started."""


def _var_dir() -> Path:
    path = Path(os.environ.get("ORDERFLOW_VAR_DIR", "var"))
    return path if path.is_absolute() else REPO_ROOT / path


@contextmanager
def _signals_interrupt(stop_event: threading.Event) -> Iterator[None]:
    """The first signal raises Interrupted in the main thread; later ones (during cleanup) are
    only reported, so the shutdown itself is not cut short."""

    def handler(signum: int, _frame: object) -> None:
        if stop_event.is_set():
            print(f"\n{signal.Signals(signum).name}: already stopping", file=sys.stderr, flush=True)
            return
        stop_event.set()
        raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stop_components(components: list[Component]) -> None:
    for component in reversed(components):
        try:
            component.stop()
        except Exception as exc:  # keep stopping the others
            print(f"stack | could not stop {component.name}: {exc}", file=sys.stderr)


def _web_bind() -> str:
    if os.environ.get("ORDERFLOW_WEB_BIND"):
        return os.environ["ORDERFLOW_WEB_BIND"]
    return f"127.0.0.1:{int(os.environ.get('PORT', '8000'))}"


def _port_in_use(bind: str) -> bool:
    host, port = bind.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "0.0.0.0", int(port)))
        except OSError:
            return True
    return False


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]+@", r"\1***@", url)


def _banner(base: str, env: dict[str, str]) -> str:
    lines = [
        "",
        "OrderFlow is ready",
        f"  API docs    {base}/api/docs/",
        f"  Admin       {base}/admin/   (admin@orderflow.local / admin)",
        f"  Health      {base}/health/ready",
        f"  Kafka       {env['KAFKA_BOOTSTRAP_SERVERS']}",
        f"  PostgreSQL  {_hide_password(env['DATABASE_URL'])}",
        f"  Redis       {_hide_password(env['REDIS_URL'])}",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def cmd_run() -> int:
    stop_event = threading.Event()
    components: list[Component] = []
    supervisor: Supervisor | None = None
    bind = _web_bind()
    host, port = bind.rsplit(":", 1)
    base = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"
    hosted = parse_hosted(os.environ.get("ORDERFLOW_CONTEXTS"))
    if _port_in_use(bind):
        print(f"stack | {bind} is in use; set ORDERFLOW_WEB_BIND (e.g. 127.0.0.1:8001) or PORT", file=sys.stderr)
        return 1
    var_dir = _var_dir()
    var_dir.mkdir(parents=True, exist_ok=True)  # beat's schedule lives there even with external servers
    with _signals_interrupt(stop_event):
        try:
            infra, components, fresh_broker = resolve_environment(var_dir, kafka_port=9092)
            env = {
                **os.environ,
                **infra,
                "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "orderflow.settings.dev"),
                "CELERY_BEAT_SCHEDULE_FILENAME": os.environ.get(
                    "CELERY_BEAT_SCHEDULE_FILENAME", str(var_dir / "celerybeat-schedule")
                ),
            }
            supervisor = Supervisor(env, REPO_ROOT)
            # Added (not started) first so every prefix, the one-shot steps' too, has the same width.
            supervisor.add("web", processes.WEB, {"GUNICORN_BIND": bind})
            supervisor.add("worker", processes.WORKER)
            supervisor.add("beat", processes.BEAT)
            for context in hosted:
                supervisor.add(f"consumer-{context}", processes.consumer(context))
            for component in components:
                supervisor.log(f"{component.name}: {'started' if component.started else 'reused'} {component.url}")
            steps = [("migrate", processes.MIGRATE), ("create-topics", processes.CREATE_TOPICS)]
            if fresh_broker:
                # The memory-only broker has forgotten every topic and message: the relay resends
                # the retained outbox rows in order, and the consumers' inboxes drop duplicates.
                steps.append(("republish", ["python", "manage.py", "outbox_republish"]))
            steps.append(("seed-demo", ["python", "manage.py", "seed_demo"]))
            for name, argv in steps:
                code = supervisor.run_once(name, argv)
                if code != 0:
                    supervisor.log(f"step {name!r} ({shlex.join(argv)}) failed with exit code {code}; stopping")
                    return code if code > 0 else 1
            supervisor.start()
            if supervisor.wait_ready(f"{base}/health/ready", READY_TIMEOUT):
                # The web answers seconds before the consumers have joined their groups (slow on
                # the embedded broker) and applied the seeded events: an order posted then would
                # find the orders context's catalog replica empty. Ready means ready to order.
                if supervisor.run_once("settle", processes.SETTLE) != 0:
                    supervisor.log("the consumers have not caught up (see above); orders wait until they do")
                print(_banner(base, env), flush=True)
            else:
                supervisor.log(
                    f"{base}/health/ready did not answer 200 within {READY_TIMEOUT:g} s; "
                    "see the web process's output above (still running)"
                )
            stop_event.wait()
            return 0
        except Interrupted:
            return 0
        except StackError as exc:
            print(f"stack | {exc}", file=sys.stderr)
            return 1
        finally:
            if supervisor is not None:
                supervisor.stop()
            _stop_components(components)


def cmd_services() -> int:
    stop_event = threading.Event()
    components: list[Component] = []
    with _signals_interrupt(stop_event):
        try:
            env, components, fresh_broker = resolve_environment(_var_dir(), kafka_port=9092)
            for component in components:
                print(f"# {component.name}: {'started' if component.started else 'reused'}", file=sys.stderr)
            for key, value in env.items():
                print(f"export {key}={shlex.quote(value)}")
            print("export DJANGO_SETTINGS_MODULE=orderflow.settings.dev", flush=True)
            if fresh_broker:
                print(
                    "# A new (memory-only) broker: run `python manage.py create_topics` and "
                    "`python manage.py outbox_republish` before starting processes.",
                    file=sys.stderr,
                )
            print("# Servers running; Ctrl-C stops them.", file=sys.stderr, flush=True)
            stop_event.wait()
            return 0
        except Interrupted:
            return 0
        except StackError as exc:
            print(f"stack | {exc}", file=sys.stderr)
            return 1
        finally:
            _stop_components(components)


def _missing_tools() -> list[str]:
    missing = [name for name in ("lint-imports", "ruff") if not _installed(name)]
    if importlib.util.find_spec("pytest") is None:
        missing.append("pytest")
    return missing


def _installed(program: str) -> bool:
    resolved = resolve_argv([program])[0]
    return os.sep in resolved or shutil.which(resolved) is not None


def cmd_test(pytest_args: list[str]) -> int:
    """Checks first (no servers needed, fail fast), then pytest against fresh-enough servers."""
    test_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "orderflow.settings.test", "PYTHONUNBUFFERED": "1"}
    checks = [["lint-imports"], ["ruff", "check", "."], ["python", "-m", "contracts.export", "--check"]]
    missing = _missing_tools()
    if missing:
        print(
            f"stack | not installed: {', '.join(missing)}; run `make install` (pip install -r requirements/dev.txt)",
            file=sys.stderr,
        )
        return 127
    for argv in checks:
        print(f"==> {shlex.join(argv)}", flush=True)
        code = subprocess.call(resolve_argv(argv), cwd=REPO_ROOT, env=test_env)
        if code != 0:
            print(f"stack | {shlex.join(argv)} failed with exit code {code}", file=sys.stderr)
            return code

    stop_event = threading.Event()
    components: list[Component] = []
    with _signals_interrupt(stop_event):
        try:
            infra, components, _fresh = resolve_environment(_var_dir() / "test", kafka_port=0)
            _flush_test_redis(infra)
            argv = resolve_argv(["python", "-m", "pytest", *pytest_args])
            print(f"==> pytest {shlex.join(pytest_args)}  (Kafka {infra['KAFKA_BOOTSTRAP_SERVERS']})", flush=True)
            # pytest shares our process group: a terminal Ctrl-C reaches it directly and it reports
            # what ran, so we wait for it (passing on other signals) instead of unwinding under it.
            proc = subprocess.Popen(argv, cwd=REPO_ROOT, env={**test_env, **infra})
            while True:
                try:
                    code = proc.wait()
                    return code if code >= 0 else 128 - code  # killed by a signal: the shell's 128+N
                except Interrupted as exc:
                    stop_event.clear()  # a further signal interrupts this wait again
                    if exc.args[0] != "SIGINT" and proc.poll() is None:
                        proc.send_signal(signal.Signals[exc.args[0]])
        except Interrupted:
            return 130
        except StackError as exc:
            print(f"stack | {exc}", file=sys.stderr)
            return 1
        finally:
            _stop_components(components)


def _flush_test_redis(infra: dict[str, str]) -> None:
    # Tests start from an empty cache and queue; only the stack's own test server is flushed.
    if "REDIS_URL" in os.environ:
        return
    import redis

    client = redis.Redis.from_url(infra["REDIS_URL"])
    try:
        client.flushall()
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"usage: python -m orderflow.stack run | services | test [pytest args...]\n\n{USAGE}")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "run" and not rest:
            return cmd_run()
        if command == "services" and not rest:
            return cmd_services()
        if command == "test":
            return cmd_test(rest)
    except KeyboardInterrupt:  # Ctrl-C outside the commands' own handling, e.g. during lint
        return 130
    print(f"unknown command {shlex.join(argv)!r}; try `python -m orderflow.stack --help`", file=sys.stderr)
    return 2

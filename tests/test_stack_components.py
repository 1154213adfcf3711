"""The dev stack's supervisor and URL formats. Plain processes: no Django database needed."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import environ
import pytest
import redis

from orderflow.stack.components import postgres_url, redis_urls, tansu_environment
from orderflow.stack.supervisor import Supervisor

SLEEPER = ["python", "-c", "import time; print('hello', flush=True); time.sleep(60)"]


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _running(pid: int) -> bool:
    # A zombie nobody reaps (no init in some containers) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def supervisor():
    out = io.StringIO()
    sup = Supervisor(dict(os.environ), Path.cwd(), out=out)
    yield sup, out
    sup.stop(timeout=2)


def test_output_is_prefixed_per_process_without_color_off_a_tty(supervisor):
    sup, out = supervisor
    sup.add("web", SLEEPER)
    sup.add("consumer-orders", ["python", "-c", "import sys; print('to stderr', file=sys.stderr)"])
    sup.start()
    assert _until(lambda: "to stderr" in out.getvalue() and "hello" in out.getvalue())
    lines = out.getvalue().splitlines()
    assert "web             | hello" in lines
    assert "consumer-orders | to stderr" in lines
    assert "\033[" not in out.getvalue()


def test_a_killed_process_is_restarted(supervisor):
    sup, out = supervisor
    sup.add("worker", SLEEPER)
    sup.start()
    assert _until(lambda: sup.alive("worker"))
    first = sup.pid("worker")
    os.kill(first, signal.SIGKILL)
    assert _until(lambda: sup.pid("worker") != first and sup.alive("worker"), timeout=5)
    assert sup.restarts("worker") == 1
    assert "exited with signal SIGKILL; restarting in 0.5 s" in out.getvalue()
    assert _until(lambda: out.getvalue().count("worker | hello") == 2)


def test_stop_leaves_no_process_alive_even_stubborn_ones_and_their_children(supervisor):
    sup, out = supervisor
    # Ignores SIGTERM and forks a grandchild that ignores it too: only SIGKILL on the group ends them.
    stubborn = [
        "python",
        "-c",
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = os.fork()\n"
        # One write per line: both processes share the pipe, and print() writes the newline apart.
        "os.write(1, b'child\\n' if child == 0 else f'grandchild {child}\\n'.encode())\n"
        "time.sleep(60)",
    ]
    sup.add("beat", stubborn)
    sup.add("web", SLEEPER)
    sup.start()
    assert _until(lambda: "grandchild" in out.getvalue() and "hello" in out.getvalue())
    grandchild = int(next(line for line in out.getvalue().splitlines() if "grandchild" in line).split()[-1])
    pids = [sup.pid("beat"), sup.pid("web"), grandchild]
    started = time.monotonic()
    sup.stop(timeout=1)
    assert time.monotonic() - started < 5
    assert _until(lambda: not any(_running(pid) for pid in pids), timeout=3)
    assert "restarting" not in out.getvalue()


def test_one_shot_steps_report_their_exit_code(supervisor):
    sup, out = supervisor
    assert sup.run_once("migrate", ["python", "-c", "print('migrated')"]) == 0
    assert sup.run_once("seed", ["python", "-c", "raise SystemExit(3)"]) == 3
    assert "migrate | migrated" in out.getvalue()


def test_python_means_this_interpreter(supervisor):
    sup, out = supervisor
    assert sup.run_once("which", ["python", "-c", "import sys; print(sys.executable)"]) == 0
    assert f"which | {sys.executable}" in out.getvalue()


def test_postgres_url_names_the_socket_directory_for_django_environ():
    config = environ.Env.db_url_config(postgres_url(Path("/srv/my checkout+x/var/postgres")))
    assert config["HOST"] == "/srv/my checkout+x/var/postgres"
    assert config["NAME"] == "orderflow"
    assert config["USER"] == "postgres"
    assert config["ENGINE"] == "django.db.backends.postgresql"


def test_redis_urls_suit_redis_py_and_kombu():
    urls = redis_urls(Path("/srv/var/redis/redis.sock"))
    kwargs = redis.connection.ConnectionPool.from_url(urls["REDIS_URL"]).connection_kwargs
    assert kwargs["path"] == "/srv/var/redis/redis.sock"
    assert kwargs["db"] == 0
    from kombu import Connection

    conn = Connection(urls["CELERY_BROKER_URL"])
    assert conn.transport_cls == "redis"
    assert conn.hostname == "socket:///srv/var/redis/redis.sock"  # kombu's spelling of a unix socket


def test_tansu_runs_one_tokio_worker_unless_the_environment_says_otherwise():
    assert tansu_environment({"PATH": "/bin"}) == {"PATH": "/bin", "NO_COLOR": "1", "TOKIO_WORKER_THREADS": "1"}
    assert tansu_environment({"TOKIO_WORKER_THREADS": "2"})["TOKIO_WORKER_THREADS"] == "2"

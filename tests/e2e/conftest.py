"""A whole OrderFlow stack as real processes (gunicorn, Celery worker and beat, one consumer per
context), on fresh databases and topics of its own, driven over HTTP like a user would."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from orderflow.contexts_registry import ALL_CONTEXTS
from orderflow.stack import processes
from orderflow.stack.components import free_port
from orderflow.stack.supervisor import Supervisor
from tests.fixtures.processes import ROOT, pg_connect, process_env


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: object


class Http:
    def __init__(self, base: str, token: str | None = None) -> None:
        self.base, self.token = base, token

    def request(self, method: str, path: str, body: object | None = None, headers: dict | None = None) -> Response:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, raw, hdrs = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, raw, hdrs = error.code, error.read(), dict(error.headers)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Response(status, hdrs, parsed)

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: object | None = None, **kw) -> Response:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: object, **kw) -> Response:
        return self.request("PATCH", path, body, **kw)

    def login(self, email: str, password: str) -> Http:
        tokens = self.post("/api/auth/token/", {"email": email, "password": password})
        assert tokens.status == 200, tokens.body
        return Http(self.base, tokens.body["access"])


def eventually(check, *, timeout: float = 30.0, interval: float = 0.2, message: str = ""):
    """Poll `check()` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not reached within {timeout}s: {message} (last: {last!r})")


DEADLINE_SECONDS = 6
PAYMENT_LIMIT = "500.00"


@dataclass
class Stack:
    base: str
    supervisor: Supervisor
    log: Path
    env: dict[str, str]
    database_name: str
    namespace: str

    def http(self) -> Http:
        return Http(self.base)

    def database(self, context: str) -> str:
        return f"{self.database_name}_{context}"

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _drop_databases(name: str) -> None:
    with pg_connect("postgres") as conn:
        for database in [name, *(f"{name}_{c}" for c in ALL_CONTEXTS)]:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


@contextmanager
def running_stack(workdir: Path, *, prefix: str, own_groups: bool = False, **settings: str) -> Iterator[Stack]:
    """Start a whole stack on fresh databases and topics of its own (named `<prefix>_<run id>`),
    with `settings` added to its environment; stop it and drop its databases afterwards.

    Consumer group ids (`orderflow.<context>`) do not follow the topic namespace: stacks sharing
    a broker share their groups, and a member joining or dying in one stalls the other's
    partitions. `own_groups` gives this stack's consumers groups of its own (`<namespace>.<context>`).
    """
    run_id = uuid.uuid4().hex[:8]
    database = f"{prefix}_{run_id}"
    namespace = f"{prefix}{run_id}"
    port = free_port()
    log = workdir / "stack.log"
    env = process_env(
        namespace=namespace,
        database=database,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        CELERY_BEAT_SCHEDULE_FILENAME=str(workdir / "beat-schedule"),
        **settings,
    )
    out = log.open("w", buffering=1)
    supervisor = Supervisor(env=env, cwd=ROOT, out=out)
    stack = Stack(f"http://127.0.0.1:{port}", supervisor, log, env, database, namespace)
    try:
        for name, argv in [
            ("migrate", processes.MIGRATE),
            ("topics", processes.CREATE_TOPICS),
            ("seed", ["python", "manage.py", "seed_demo"]),
        ]:
            assert supervisor.run_once(name, argv) == 0, f"{name} failed:\n{stack.log_tail()}"
        supervisor.add("web", processes.WEB)
        supervisor.add("worker", processes.WORKER)
        supervisor.add("beat", processes.BEAT)
        for context in ALL_CONTEXTS:
            group = ["--group", f"{namespace}.{context}"] if own_groups else []
            supervisor.add(f"consumer-{context}", [*processes.consumer(context), *group])
        supervisor.start()
        assert supervisor.wait_ready(stack.base + "/health/ready", timeout=90), f"not ready:\n{stack.log_tail()}"
        yield stack
    finally:
        supervisor.stop()
        out.close()
        _drop_databases(database)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("stack"),
        prefix="e2e",
        # Short enough to test expiry, long enough for every normal saga to finish first.
        ORDERS_PENDING_DEADLINE_SECONDS=str(DEADLINE_SECONDS),
        ORDERS_DEADLINE_CHECK_SECONDS="1",
        PAYMENTS_SINGLE_PAYMENT_LIMIT=PAYMENT_LIMIT,
    ) as stack:
        yield stack


@pytest.fixture(autouse=True)
def _show_stack_log_on_failure(request, stack):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- last lines of the stack log ({stack.log}) ---\n{stack.log_tail(150)}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)

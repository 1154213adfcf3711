"""The running system for the HTTP and saga benchmarks: OrderFlow's own process commands
(orderflow.stack.processes) under its Supervisor, on a sandbox, plus the data they need.

Seeding goes straight to the sandbox's databases — the orders context's product-price replica and
inventory's stock rows — as if the catalog's ProductAdded events had been applied, so the
benchmarks start without waiting for the catalog to propagate; customers register over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bench.env import ROOT, Sandbox, log
from orderflow.contexts_registry import ALL_CONTEXTS
from orderflow.stack import processes
from orderflow.stack.components import free_port
from orderflow.stack.supervisor import Supervisor, resolve_argv

SKUS = [f"SKU-P{n:04d}" for n in range(50)]
PRICE = "19.99"
ORDER_BODY = json.dumps(
    {"lines": [{"sku": SKUS[1], "quantity": 2}, {"sku": SKUS[7], "quantity": 1}], "payment": {"card_token": "tok_visa"}}
).encode()


def order_bodies(count: int = 50) -> list[bytes]:
    """Two-line orders over the seeded skus (varied, so stock rows are not all one hot row)."""
    return [
        json.dumps(
            {
                "lines": [
                    {"sku": SKUS[i % len(SKUS)], "quantity": 1 + i % 3},
                    {"sku": SKUS[(i * 7 + 3) % len(SKUS)], "quantity": 1},
                ],
                "payment": {"card_token": "tok_visa"},
            }
        ).encode()
        for i in range(count)
    ]


def seed(box: Sandbox, *, stock: bool) -> None:
    with box.connect("orders") as conn:
        conn.execute(
            "INSERT INTO orders_productprice (sku, price_amount, price_currency, active, updated_at) "
            "SELECT unnest(%s::text[]), %s, 'USD', true, now()",
            [SKUS, PRICE],
        )
    if stock:
        with box.connect("inventory") as conn:
            conn.execute(
                "INSERT INTO inventory_stockitem (sku, on_hand, reserved, updated_at) "
                "SELECT unnest(%s::text[]), 1000000000, 0, now()",
                [SKUS],
            )


@dataclass
class Running:
    base: str
    supervisor: Supervisor


@contextmanager
def web_only(box: Sandbox, log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn alone (deploy/gunicorn.conf.py), its output straight to a file: no log pump in this
    process competes with the server for the CPU while it is measured."""
    port = free_port()
    proc = _spawn(processes.WEB, {**box.env, "GUNICORN_BIND": f"127.0.0.1:{port}"}, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        if not _wait_ready(f"{base}/health/ready", proc, timeout=90):
            raise RuntimeError(f"gunicorn did not become ready in 90 s; see {log_path}")
        yield base, proc
    finally:
        _stop_group(proc)


@contextmanager
def relay_only(box: Sandbox, log_path: Path, *contexts: str) -> Iterator[subprocess.Popen]:
    """The listening relays of `contexts` in one process (`relay_outbox --listen`), as the
    contexts' consumer processes would run them: what publishes the web tier's events when only
    gunicorn runs. Ready once it printed that it relays."""
    start = log_path.stat().st_size if log_path.exists() else 0
    proc = _spawn(processes.relay(*contexts), box.env, log_path)
    try:
        deadline = time.monotonic() + 60
        while b"relaying" not in log_path.read_bytes()[start:]:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the relay process did not start; see {log_path}")
            time.sleep(0.2)
        yield proc
    finally:
        _stop_group(proc)


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """A process of its own group, its output appended straight to `log_path`."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            resolve_argv(argv),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running(box: Sandbox, *, full: bool, out: TextIO) -> Iterator[Running]:
    """gunicorn (deploy/gunicorn.conf.py) alone, or with `full` the whole system: web, Celery
    worker and beat, and one consumer per context — as `python -m orderflow.stack run` starts it."""
    port = free_port()
    env = {
        **box.env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "CELERY_BEAT_SCHEDULE_FILENAME": str(box.log_path.with_suffix(".beat")),
    }
    supervisor = Supervisor(env=env, cwd=ROOT, out=out)
    supervisor.add("web", processes.WEB)
    if full:
        supervisor.add("worker", processes.WORKER)
        supervisor.add("beat", processes.BEAT)
        for context in ALL_CONTEXTS:
            supervisor.add(f"consumer-{context}", processes.consumer(context))
    base = f"http://127.0.0.1:{port}"
    try:
        supervisor.start()
        if not supervisor.wait_ready(f"{base}/health/ready", timeout=90):
            raise RuntimeError(f"{base}/health/ready did not answer 200 in 90 s; see {box.log_path}")
        yield Running(base, supervisor)
    finally:
        supervisor.stop()


def _post(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def customer_token(base: str) -> str:
    """Register a customer over the API and log in: a real access token."""
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    status, body = _post(f"{base}/api/customers/", {"email": email, "password": "bench-password", "name": "Bench"})
    if status != 201:
        raise RuntimeError(f"registering a customer answered {status}: {body}")
    status, body = _post(f"{base}/api/auth/token/", {"email": email, "password": "bench-password"})
    if status != 200:
        raise RuntimeError(f"logging in answered {status}: {body}")
    return body["access"]


def place_order(base: str, token: str, body: bytes = ORDER_BODY) -> str:
    status, answer = _post(f"{base}/api/orders/", json.loads(body), token)
    if status != 202:
        raise RuntimeError(f"POST /api/orders/ answered {status}: {answer}")
    return answer["id"]


def wait_status(box: Sandbox, order_ids: list[str], *, timeout: float, final: bool = True) -> dict[str, str]:
    """Poll the orders database until no order of `order_ids` is PENDING (or the timeout); their statuses."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    with box.connect("orders") as conn:
        while True:
            rows = conn.execute("SELECT id::text, status FROM orders_order WHERE id = ANY(%s::uuid[])", [order_ids])
            statuses = dict(rows.fetchall())
            pending = sum(1 for i in order_ids if statuses.get(i, "PENDING") == "PENDING")
            if not pending or time.monotonic() > deadline:
                return statuses
            time.sleep(0.5)


def warm_up(box: Sandbox, base: str, token: str, *, timeout: float = 120) -> float:
    """Place orders until one confirms end to end: every consumer has joined its group."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        order_id = place_order(base, token)
        statuses = wait_status(box, [order_id], timeout=10)
        if statuses.get(order_id) == "CONFIRMED":
            return time.monotonic() - started
        if statuses.get(order_id) not in (None, "PENDING"):
            raise RuntimeError(f"warm-up order ended {statuses.get(order_id)}; see {box.log_path}")
    log(f"warm-up: no order confirmed within {timeout:g} s")
    raise RuntimeError(f"the saga did not complete within {timeout:g} s; see {box.log_path}")

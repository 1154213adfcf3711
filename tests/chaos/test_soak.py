"""Chaos: the stack supervises its processes, and the saga's guarantees survive random SIGKILLs.

- A consumer, the Celery worker or beat killed with SIGKILL is running again, under a new pid,
  within seconds (as a container orchestrator would restart it), and orders still complete.
- Soak: a few hundred orders at a steady open-loop rate, with declined cards, scarce stock,
  customer cancellations and staff ship/deliver, while a chaos thread SIGKILLs a random consumer,
  the worker or beat every 1-3 s. Afterwards every order is final and every invariant of
  architecture.md holds, every outbox row was published and applied exactly once by each consumer
  subscribed to it.

The stack is this module's own (tests/chaos/conftest.py) with a 120 s PENDING deadline. CHAOS_SEED
makes the order plan and the kill sequence reproducible (not their timing); CHAOS_ORDERS and
CHAOS_RATE change the load.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.conftest import DEADLINE_SECONDS
from tests.e2e.conftest import Http, eventually
from tests.e2e.shop import KEPT, Shop, all_orders, assert_invariants, invariant_violations
from tests.fixtures.processes import pg_connect

pytestmark = pytest.mark.chaos

ORDERS = int(os.environ.get("CHAOS_ORDERS", "300"))
RATE = float(os.environ.get("CHAOS_RATE", "25"))  # orders per second, open loop
SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**6))
CLIENTS = 24  # HTTP client threads; an order waits for a free one only if all are busy
KILL_EVERY = (1.0, 3.0)  # seconds between two kills
CHAOS_TAIL = 8.0  # keep killing this long after the last order was accepted
SETTLE_TIMEOUT = 120.0  # for no order PENDING, then again for every invariant to hold
RESTART_WITHIN = 10.0
CANCELS, SHIPMENTS = 12, 8
# Processes the chaos thread may kill (web is not: clients would just see errors), the busy ones
# twice as often.
BUSY = ["consumer-inventory", "consumer-orders", "consumer-payments", "consumer-notifications", "worker", "beat"]
QUIET = ["consumer-customers", "consumer-catalog"]
VICTIMS = BUSY * 2 + QUIET


def test_killed_consumer_worker_and_beat_are_restarted_within_seconds(shop, chaos_stack):
    supervisor = chaos_stack.supervisor
    for name in ["consumer-orders", "worker", "beat"]:
        eventually(lambda name=name: supervisor.alive(name), timeout=RESTART_WITHIN, message=f"{name} running")
        pid, restarts = supervisor.pid(name), supervisor.restarts(name)
        os.killpg(pid, signal.SIGKILL)
        killed = time.monotonic()
        eventually(
            lambda name=name, pid=pid: supervisor.alive(name) and supervisor.pid(name) != pid,
            timeout=RESTART_WITHIN,
            interval=0.05,
            message=f"{name} restarted after SIGKILL",
        )
        took = time.monotonic() - killed
        assert supervisor.restarts(name) == restarts + 1
        # The whole group went with it, e.g. Celery's pool children (they may take a moment to exit).
        eventually(lambda pid=pid: not _group_members(pid), timeout=5, message=f"{name}'s old process group gone")
        print(f"{name}: SIGKILL pid {pid} -> running again as pid {supervisor.pid(name)} after {took:.1f} s")

    # The restarted processes do their work: a fresh order goes all the way.
    sku = shop.product(price="5.00", stock=3)
    customer = shop.customer()
    order = shop.place(customer, [(sku, 1)])
    done = eventually(
        lambda: (
            (o := customer.get(f"/api/orders/{order['id']}/").body)
            and (o["status"], o["stock_status"], o["payment_status"]) == ("CONFIRMED", "COMMITTED", "CAPTURED")
            and o
        ),
        timeout=60,
        message="a fresh order confirmed after the restarts",
    )
    assert shop.stock(sku) == {"sku": sku, "on_hand": 2, "reserved": 0, "available": 2}
    assert done["total"]["amount"] == "5.00"


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@dataclass
class Planned:
    index: int
    customer: int
    lines: list[tuple[str, int]]
    card: str
    action: str | None  # "cancel" (by the customer soon after placing) or "ship" (staff, then deliver)
    key: str
    order_id: str | None = None
    latency: float | None = None
    lateness: float = 0.0  # how long it waited for a free client after its slot
    attempts: int = 0
    outcome: str = ""


@dataclass(frozen=True)
class Kill:
    at: float
    name: str
    pid: int


def _plan(rng: random.Random, plenty: list[str], scarce: list[str], customers: int) -> list[Planned]:
    plan = []
    for index in range(ORDERS):
        # One or two lines, a quarter of them on a scarce sku (which runs out early on).
        skus = [rng.choice(scarce if rng.random() < 0.25 else plenty) for _ in range(rng.choice([1, 1, 1, 2]))]
        lines = [(sku, rng.randint(1, 3)) for sku in dict.fromkeys(skus)]
        card = "tok_declined" if rng.random() < 0.1 else "tok_visa"
        plan.append(Planned(index, rng.randrange(customers), lines, card, None, str(uuid.uuid4())))
    # Shipments: orders that will be confirmed unless something goes wrong; cancels: any others.
    shippable = [p for p in plan if p.card == "tok_visa" and all(sku in plenty for sku, _ in p.lines)]
    for p in rng.sample(shippable, SHIPMENTS):
        p.action = "ship"
    for p in rng.sample([p for p in plan if p.action is None], CANCELS):
        p.action = "cancel"
    return plan


class Soak:
    """The moving parts of one soak run: client threads, the chaos thread, customer and staff
    actions, and what each of them saw."""

    def __init__(self, shop: Shop, customers: list[Http], plan: list[Planned]) -> None:
        self.shop, self.customers, self.plan = shop, customers, plan
        self.supervisor = shop.stack.supervisor
        self.t0 = time.monotonic()
        self.kills: list[Kill] = []
        self.skipped_kills: Counter[str] = Counter()
        self.http_errors: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.stop_chaos = threading.Event()
        self.placed = threading.Event()  # every order accepted: staff may stop waiting for more
        self.timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- customers ---------------------------------------------------------------------------------
    def place(self, p: Planned, slot: float) -> None:
        """POST the order with its own Idempotency-Key, retrying (same key) whatever went wrong:
        a 400 while orders' price replica has not seen a new product, a timeout, a 5xx."""
        p.lateness = self.now() - slot
        customer = self.customers[p.customer]
        body = {"lines": [{"sku": s, "quantity": q} for s, q in p.lines], "payment": {"card_token": p.card}}
        began, delay = time.monotonic(), 0.1
        while True:
            p.attempts += 1
            try:
                response = customer.post("/api/orders/", body, headers={"Idempotency-Key": p.key})
            except OSError as exc:  # URLError, timeouts, resets
                with self._lock:
                    self.http_errors[f"POST /api/orders/ {type(exc).__name__}"] += 1
            else:
                if response.status == 202:
                    p.order_id, p.latency = response.body["id"], time.monotonic() - began
                    break
                with self._lock:
                    self.http_errors[f"POST /api/orders/ {response.status}"] += 1
                if response.status != 400 and response.status < 500:
                    raise AssertionError(f"order {p.index} refused: {response.status} {response.body}")
            if time.monotonic() - began > 60:
                raise AssertionError(f"order {p.index} not accepted within 60 s: {dict(self.http_errors)}")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        if p.action == "cancel":
            timer = threading.Timer(random.uniform(0.2, 3.0), self.cancel, args=[p])
            timer.daemon = True
            with self._lock:
                self.timers.append(timer)
            timer.start()

    def cancel(self, p: Planned) -> None:
        for _attempt in range(5):
            try:
                response = self.customers[p.customer].post(f"/api/orders/{p.order_id}/cancel/", {})
            except OSError:
                time.sleep(0.5)
                continue
            # 409: the saga got there first (out of stock, declined) — a refusal is an answer too.
            assert response.status in (202, 409), response.body
            p.outcome = "cancelled" if response.status == 202 else f"refused ({response.body.get('detail', '')})"
            with self._lock:
                self.actions["customer cancel accepted" if response.status == 202 else "customer cancel refused"] += 1
            return
        p.outcome = "cancel failed"

    # -- staff ----------------------------------------------------------------------------------------
    def staff(self, deadline: float) -> None:
        """Ship, then deliver, each order planned for it once it is CONFIRMED."""
        waiting = [p for p in self.plan if p.action == "ship"]
        while waiting and time.monotonic() < deadline:
            for p in list(waiting):
                if p.order_id is None:
                    if self.placed.is_set():
                        waiting.remove(p)  # never placed: the placing thread reports it
                    continue
                try:
                    status = self.shop.staff.get(f"/api/orders/{p.order_id}/").body["status"]
                    step = {"CONFIRMED": "ship", "SHIPPED": "deliver"}.get(status)
                    if step:
                        response = self.shop.staff.post(f"/api/orders/{p.order_id}/{step}/")
                        assert response.status in (200, 409), response.body
                        if response.status == 200:
                            self.actions[f"staff {step}"] += 1
                        continue
                except OSError:
                    continue
                if status in ("DELIVERED", "CANCELLED"):
                    p.outcome = status.lower()
                    waiting.remove(p)
            time.sleep(0.3)

    # -- chaos --------------------------------------------------------------------------------------
    def chaos(self, rng: random.Random) -> None:
        while not self.stop_chaos.wait(rng.uniform(*KILL_EVERY)):
            name = rng.choice(VICTIMS)
            pid = self.supervisor.pid(name)
            if pid is None or not self.supervisor.alive(name):
                self.skipped_kills[name] += 1  # between a kill and its restart
                continue
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                self.skipped_kills[name] += 1
                continue
            self.kills.append(Kill(self.now(), name, pid))
            self.supervisor.log(f"chaos: SIGKILL to pid {pid} at +{self.now():.1f} s", name)


def _evidence(shop: Shop, order_ids: list[str], soak: Soak) -> str:
    """What a bug report needs: the order, its saga timeline, its lines in the stack log, and the kills."""
    out = ["kills: " + ", ".join(f"+{k.at:.1f}s {k.name}({k.pid})" for k in soak.kills)]
    log = shop.stack.log.read_text(errors="replace").splitlines()
    for order_id in order_ids[:5]:
        order = shop.staff.get(f"/api/orders/{order_id}/").body
        timeline = shop.staff.get(f"/api/orders/{order_id}/timeline/").body
        out.append(f"--- order {order_id}: {order}")
        if isinstance(timeline, list):
            for entry in timeline:
                note = f"  note={entry['data'].get('note')!r}" if entry["data"].get("note") else ""
                out.append(f"    {entry['occurred_at']} {entry['source']:<13} {entry['type']}{note}")
        out += [f"    log: {line}" for line in [line for line in log if order_id in line][-25:]]
    return "\n".join(out)


def test_soak_with_random_kills_keeps_every_invariant(shop, chaos_stack):
    supervisor = chaos_stack.supervisor
    restarts_before = {name: supervisor.restarts(name) for name in set(VICTIMS)}
    print(f"\nchaos soak: seed {SEED} (CHAOS_SEED), {ORDERS} orders at {RATE:g}/s, stack log {chaos_stack.log}")
    rng = random.Random(SEED)
    plenty = [shop.product(price="3.00", stock=5000), shop.product(price="7.50", stock=5000)]
    scarce = [shop.product(price="12.00", stock=12), shop.product(price="4.25", stock=30)]
    customers = [shop.customer() for _ in range(5)]
    # Orders prices from its own replica: start once it has every product (else the first orders
    # only get 400s), so the load is what the plan says.
    with pg_connect(chaos_stack.database("orders")) as conn:
        eventually(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM orders_productprice WHERE sku = ANY(%s)", [plenty + scarce]
                ).fetchone()[0]
                == 4
            ),
            timeout=60,
            message="orders' price replica has the products",
        )
    plan = _plan(rng, plenty, scarce, len(customers))

    soak = Soak(shop, customers, plan)
    chaos = threading.Thread(target=soak.chaos, args=[random.Random(SEED + 1)], name="chaos", daemon=True)
    staff = threading.Thread(
        target=soak.staff, args=[time.monotonic() + 60 + ORDERS / RATE + SETTLE_TIMEOUT], name="staff", daemon=True
    )
    chaos.start()
    staff.start()
    try:
        with ThreadPoolExecutor(CLIENTS, thread_name_prefix="client") as clients:
            futures = []
            for p in plan:  # open loop: each order has its time slot, whatever the responses
                slot = p.index / RATE
                time.sleep(max(0.0, slot - soak.now()))
                futures.append(clients.submit(soak.place, p, slot))
            for future in futures:
                future.result()
        placing = soak.now()
        soak.placed.set()
        time.sleep(CHAOS_TAIL)
    finally:
        soak.stop_chaos.set()
        soak.placed.set()
        chaos.join()
    chaos_stopped = soak.now()
    for timer in soak.timers:
        timer.join()
    for name in set(VICTIMS):
        eventually(lambda name=name: supervisor.alive(name), timeout=RESTART_WITHIN, message=f"{name} back")

    try:
        staff.join(SETTLE_TIMEOUT + 10)
        orders = assert_invariants(shop, timeout=SETTLE_TIMEOUT)
    except AssertionError:
        pending = [o["id"] for o in shop.staff.get("/api/orders/?status=PENDING").body["results"]]
        suspects = pending + [v.order_id for v in invariant_violations(shop, all_orders(shop)) if v.order_id]
        print(f"--- evidence (seed {SEED}) ---\n{_evidence(shop, list(dict.fromkeys(suspects)), soak)}")
        raise
    settled = soak.now() - chaos_stopped

    # -- what happened ----------------------------------------------------------------------------
    ours = {p.order_id for p in plan}
    statuses = Counter(o["status"] for o in orders if o["id"] in ours)
    reasons = Counter(o["cancellation_reason"] for o in orders if o["id"] in ours and o["status"] == "CANCELLED")
    kills = Counter(k.name for k in soak.kills)
    restarts = {name: supervisor.restarts(name) - restarts_before[name] for name in sorted(set(VICTIMS))}
    unexpected = {name: n - kills[name] for name, n in restarts.items() if n != kills[name]}
    latencies = sorted(p.latency for p in plan if p.latency is not None)
    timeouts = [o["id"] for o in orders if o["cancellation_reason"] == "timeout"]
    log = chaos_stack.log.read_text(errors="replace")
    print(
        f"placed {len(latencies)} orders in {placing:.1f} s ({len(latencies) / placing:.1f}/s); POST latency "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; waited for a client: max {max(p.lateness for p in plan) * 1000:.0f} ms; "
        f"retried: {dict(soak.http_errors) or 'none'}\n"
        f"kills ({len(soak.kills)} in {chaos_stopped:.1f} s): {dict(sorted(kills.items()))}; "
        f"skipped (already down): {dict(soak.skipped_kills) or 'none'}; "
        f"restarts not caused by a kill: {unexpected or 'none'}\n"
        f"settled {settled:.1f} s after chaos stopped\n"
        f"orders: {dict(sorted(statuses.items()))}; cancellations: {dict(sorted(reasons.items()))}\n"
        f"actions: {dict(sorted(soak.actions.items()))}\n"
        f"stack log: {log.count('Traceback')} tracebacks, {log.count('transient failure')} transient retries, "
        f"{log.lower().count('dead-letter') + log.lower().count('dead letter')} dead-letter mentions"
    )
    if timeouts:
        print(f"cancelled by the {DEADLINE_SECONDS} s deadline:\n{_evidence(shop, timeouts, soak)}")

    # The scenario really ran: every order accepted, processes killed and restarted, every path taken.
    assert all(p.order_id for p in plan) and sum(statuses.values()) == ORDERS
    assert len(soak.kills) >= 4, soak.kills
    assert all(restarts[name] >= n for name, n in kills.items()), (kills, restarts)
    assert reasons["out_of_stock"] and reasons["payment_declined"] and sum(statuses[s] for s in KEPT)
    assert soak.actions["customer cancel accepted"] and soak.actions["staff deliver"]

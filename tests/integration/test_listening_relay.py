"""A context's listening relay (decision 43): commits announce themselves through PostgreSQL
LISTEN/NOTIFY, so whichever process or session commits an outbox row, the context's relay thread
publishes it at once, and the committing process queues no Celery run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from contexts.catalog import services as catalog
from contexts.catalog.models import OutboxEvent
from contexts.orders.models import OutboxEvent as OrderOutbox
from contexts.orders.models import ProductPrice
from orderflow.contexts_registry import context_queue
from orderflow.domain import Money
from orderflow.messaging import notify, outbox
from orderflow.messaging.kafka import topic_name
from tests.fixtures.kafka import read_topic
from tests.fixtures.processes import ROOT
from tests.fixtures.relay import emptied_relay_queue, queued_relay_tasks

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


@pytest.fixture
def queue(kafka_ns):
    client = emptied_relay_queue("catalog", kafka_ns)
    yield client
    client.delete(context_queue("catalog"))


def _published(sku: str, *, within: float = 5.0) -> bool:
    """Whether the row of `sku` gets published within `within` seconds (the block is still open:
    only a notification can have woken the thread, never its last run on leaving)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if OutboxEvent.objects.using("catalog").get(aggregateid=sku).published_at is not None:
            return True
        time.sleep(0.05)
    return False


def _listening_thread() -> outbox._RelayThread:
    thread = outbox._inline["catalog"]
    assert thread.listening.wait(10), "the relay thread never got its LISTEN in place"
    return thread


def test_a_commit_wakes_the_listening_relay_and_queues_no_worker_run(queue):
    with outbox.inline_relay("catalog"):
        _listening_thread()
        catalog.product_add(sku="SKU-L1", name="Announced", price=Money.of("1.00", "USD"))
        assert _published("SKU-L1")
    assert queued_relay_tasks(queue, "catalog") == 0
    (message,) = read_topic(topic_name("catalog.product"), expect=1, timeout=8, settle=1)
    assert message.key() == b"SKU-L1"


def test_a_commit_of_another_session_wakes_it_and_so_does_a_republish(queue):
    """The NOTIFY is the trigger's, not the committing code's: a row inserted by another session
    (any process) is heard, and so is a row put back to unpublished (outbox_republish, an admin
    retry). The relay's own claim, which sets published_at, announces nothing."""
    catalog.product_add(sku="SKU-L2", name="Before", price=Money.of("1.00", "USD"))  # nobody listens yet
    params = connections["catalog"].get_connection_params()
    with outbox.inline_relay("catalog"):
        _listening_thread()
        assert _published("SKU-L2")  # relayed on connecting: it committed before the LISTEN
        with psycopg.connect(**params, autocommit=True) as other:
            other.execute(
                f"UPDATE {OutboxEvent._meta.db_table} SET published_at = NULL WHERE aggregateid = %s", ["SKU-L2"]
            )
        assert _published("SKU-L2")
    keys = [m.key() for m in read_topic(topic_name("catalog.product"), expect=2, timeout=8, settle=1)]
    assert keys == [b"SKU-L2", b"SKU-L2"]
    assert queued_relay_tasks(queue, "catalog") == 0


def test_the_listener_reconnects_after_losing_its_connection(queue):
    with outbox.inline_relay("catalog"):
        thread = _listening_thread()
        pid = thread_listener_pid()
        with connections["catalog"].cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while thread_listener_pid() in (None, pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert thread_listener_pid() not in (None, pid)
        # Cleared on noticing the loss (before the new connection), set again after its first run.
        assert thread.listening.wait(10)
        catalog.product_add(sku="SKU-L3", name="After", price=Money.of("1.00", "USD"))
        assert _published("SKU-L3")


def thread_listener_pid() -> int | None:
    """The backend pid of the session that LISTENs on the catalog outbox's channel, if any."""
    with connections["catalog"].cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %%'")
        rows = cursor.fetchall()
    return rows[0][0] if rows else None


def test_a_placed_order_is_published_by_the_orders_relay_and_the_request_kicks_nothing(make_customer, kafka_ns):
    """What runs in production: the web worker commits the order and returns; the orders
    consumer's relay thread (here, this process's) hears the commit and publishes it."""
    client = emptied_relay_queue("orders", kafka_ns)
    ProductPrice.objects.using("orders").create(sku="SKU-L5", price_amount="2.00", price_currency="USD")
    _, api = make_customer()
    with outbox.inline_relay("orders"):
        assert outbox._inline["orders"].listening.wait(10)
        response = api.post("/api/orders/", {"lines": [{"sku": "SKU-L5", "quantity": 1}]}, format="json")
        assert response.status_code == 202
        order_id = response.json()["id"]
        deadline = time.monotonic() + 5
        while OrderOutbox.objects.using("orders").get(aggregateid=order_id).published_at is None:
            assert time.monotonic() < deadline, "the order was not published while the relay listened"
            time.sleep(0.05)
    assert queued_relay_tasks(client, "orders") == 0
    keys = [m.key() for m in read_topic(topic_name("orders.order"), expect=1, timeout=8, settle=1)]
    assert keys == [order_id.encode()]


def test_without_listening_a_commit_queues_a_worker_run(queue, settings):
    settings.OUTBOX_RELAY_LISTEN = False
    catalog.product_add(sku="SKU-L4", name="Kicked", price=Money.of("1.00", "USD"))
    assert queued_relay_tasks(queue, "catalog") == 1


def test_a_process_that_does_not_listen_sends_no_notifications(queue, settings):
    """Its commits kick their relay instead (decision 21); a NOTIFY would only serialize them
    with every other notifying commit of the database (benchmarks.md, ninth round)."""
    listener = notify.Listener(alias="catalog", table=OutboxEvent._meta.db_table)
    try:
        catalog.product_add(sku="SKU-L7", name="Announced", price=Money.of("1.00", "USD"))
        assert listener.wait(5)
        settings.OUTBOX_RELAY_LISTEN = False
        connections["catalog"].close()  # the next one is opened silenced
        catalog.product_add(sku="SKU-L8", name="Kicked", price=Money.of("1.00", "USD"))
        assert not listener.wait(1)
        assert queued_relay_tasks(queue, "catalog") == 1
        # Another session is not silenced by this one.
        with psycopg.connect(**connections["catalog"].get_connection_params(), autocommit=True) as other:
            other.execute(f"UPDATE {OutboxEvent._meta.db_table} SET published_at = now()")
            other.execute(f"UPDATE {OutboxEvent._meta.db_table} SET published_at = NULL WHERE aggregateid = 'SKU-L8'")
        assert listener.wait(5)
    finally:
        listener.close()
        connections["catalog"].close()  # later tests get a connection that notifies


@pytest.mark.parametrize(
    "argv",
    [
        ["relay_outbox", "shipping", "--listen"],
        ["relay_outbox", "shipping"],
        ["outbox_status", "catalog", "shipping"],
        ["outbox_republish", "shipping"],
    ],
)
def test_outbox_commands_refuse_a_context_they_do_not_host(argv):
    with pytest.raises(CommandError, match="'shipping' not hosted by this process"):
        call_command(*argv)


def test_relay_outbox_listen_publishes_other_processes_commits_and_stops_on_sigterm(queue, test_db_env):
    """The command as the HTTP benchmark and a split deployment run it: a process of its own that
    publishes what this process commits, and on SIGTERM makes a last run and exits 0."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "relay_outbox", "--listen", "catalog"],
        cwd=ROOT,
        env=test_db_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "relaying catalog as commits are announced" in process.stdout.readline()
        deadline = time.monotonic() + 10
        while thread_listener_pid() is None:  # its thread LISTENs after the line is printed
            assert time.monotonic() < deadline, "relay_outbox --listen never LISTENed"
            time.sleep(0.05)
        catalog.product_add(sku="SKU-L6", name="Elsewhere", price=Money.of("1.00", "USD"))
        assert _published("SKU-L6", within=10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
    assert "SIGTERM: a last run, then stopping" in process.stderr.read()
    assert thread_listener_pid() is None  # its LISTEN session closed with it
    assert queued_relay_tasks(queue, "catalog") == 0
    (message,) = read_topic(topic_name("catalog.product"), expect=1, timeout=8, settle=1)
    assert message.key() == b"SKU-L6"

"""Without listening relays (OUTBOX_RELAY_LISTEN=false, decision 43), a web worker relays its
requests' events from a relay thread of its own (outbox.relay_in_threads, called in every gunicorn
worker), not through a queued Celery task."""

from __future__ import annotations

import pytest

from contexts.orders.models import OutboxEvent, ProductPrice
from orderflow.contexts_registry import context_queue
from orderflow.messaging import outbox
from orderflow.messaging.kafka import topic_name
from tests.fixtures.kafka import read_topic
from tests.fixtures.relay import emptied_relay_queue, queued_relay_tasks

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


@pytest.fixture(autouse=True)
def _kicks(settings):
    settings.OUTBOX_RELAY_LISTEN = False


@pytest.fixture
def queue(kafka_ns):
    client = emptied_relay_queue("orders", kafka_ns)
    yield client
    client.delete(context_queue("orders"))


def test_a_web_worker_publishes_its_orders_from_its_relay_thread(make_customer, queue):
    ProductPrice.objects.using("orders").create(sku="SKU-WR1", price_amount="2.00", price_currency="USD")
    _, client = make_customer()
    outbox.relay_in_threads()  # what post_worker_init does in every gunicorn worker
    try:
        response = client.post("/api/orders/", {"lines": [{"sku": "SKU-WR1", "quantity": 1}]}, format="json")
        assert response.status_code == 202
    finally:
        outbox.stop_relay_threads()  # after the thread's last run
    order_id = response.json()["id"]
    assert OutboxEvent.objects.using("orders").get(aggregateid=order_id).published_at is not None
    assert queued_relay_tasks(queue, "orders") == 0
    keys = [m.key() for m in read_topic(topic_name("orders.order"), expect=1, timeout=8, settle=1)]
    assert keys == [order_id.encode()]


def test_without_relay_threads_a_request_queues_a_worker_run(make_customer, queue):
    ProductPrice.objects.using("orders").create(sku="SKU-WR2", price_amount="2.00", price_currency="USD")
    _, client = make_customer()
    response = client.post("/api/orders/", {"lines": [{"sku": "SKU-WR2", "quantity": 1}]}, format="json")
    assert response.status_code == 202
    assert OutboxEvent.objects.using("orders").get(aggregateid=response.json()["id"]).published_at is None
    assert queued_relay_tasks(queue, "orders") == 1

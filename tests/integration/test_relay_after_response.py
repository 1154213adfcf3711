"""A web request's events are relayed by the same thread once its response is sent, not by a
queued Celery task (orderflow.messaging.after_response)."""

from __future__ import annotations

import json

import pytest
import redis
from django.conf import settings

from contexts.orders.models import OutboxEvent, ProductPrice
from orderflow.contexts_registry import context_queue
from orderflow.messaging.kafka import topic_name
from tests.fixtures.kafka import read_topic

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def _queued_relay_tasks(client: redis.Redis, context: str) -> int:
    tasks = [json.loads(m)["headers"] for m in client.lrange(context_queue(context), 0, -1)]
    return sum(1 for t in tasks if t["task"] == "orderflow.relay_outbox" and context in t["argsrepr"])


@pytest.fixture
def queue(kafka_ns):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(context_queue("orders"), f"orderflow:relay-kick:{kafka_ns}:orders")
    yield client
    client.delete(context_queue("orders"))


def test_an_order_is_published_once_the_response_is_sent(make_customer, queue):
    ProductPrice.objects.using("orders").create(sku="SKU-AR1", price_amount="2.00", price_currency="USD")
    _, client = make_customer()
    queue.delete(context_queue("orders"))  # what registering the customer queued elsewhere is not ours
    response = client.post("/api/orders/", {"lines": [{"sku": "SKU-AR1", "quantity": 1}]}, format="json")
    assert response.status_code == 202
    order_id = response.json()["id"]
    # The test client closes the response like a WSGI server: the relay has run by now.
    row = OutboxEvent.objects.using("orders").get(aggregateid=order_id)
    assert row.published_at is not None
    assert _queued_relay_tasks(queue, "orders") == 0
    keys = [m.key() for m in read_topic(topic_name("orders.order"), expect=1, timeout=8, settle=1)]
    assert keys == [order_id.encode()]


def test_turned_off_the_request_queues_a_worker_run(make_customer, queue, settings):
    settings.WEB_RELAY_AFTER_RESPONSE = False  # rebuilds the middleware chain without it
    ProductPrice.objects.using("orders").create(sku="SKU-AR2", price_amount="2.00", price_currency="USD")
    _, client = make_customer()
    response = client.post("/api/orders/", {"lines": [{"sku": "SKU-AR2", "quantity": 1}]}, format="json")
    assert response.status_code == 202
    assert OutboxEvent.objects.using("orders").get(aggregateid=response.json()["id"]).published_at is None
    assert _queued_relay_tasks(queue, "orders") == 1

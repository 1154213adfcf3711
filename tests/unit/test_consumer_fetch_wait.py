"""Each context's consumer takes its fetch wait from its own setting when it has one."""

from __future__ import annotations

from orderflow.messaging.consumer import ContextConsumer


def test_a_context_with_its_own_fetch_wait_gets_it_and_the_others_the_default(settings):
    settings.KAFKA_CONSUMER_FETCH_WAIT_MAX_MS = 10
    settings.KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT = {"notifications": 100}
    assert ContextConsumer("notifications")._config["fetch.wait.max.ms"] == 100
    assert ContextConsumer("orders")._config["fetch.wait.max.ms"] == 10


def test_a_config_given_by_the_caller_wins(settings):
    settings.KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT = {"notifications": 100}
    consumer = ContextConsumer("notifications", config={"fetch.wait.max.ms": 25})
    assert consumer._config["fetch.wait.max.ms"] == 25

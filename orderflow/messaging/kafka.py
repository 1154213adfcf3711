"""librdkafka configuration and topic names, from settings."""

from __future__ import annotations

import logging
import os
import threading

from confluent_kafka import Producer
from django.conf import settings

log = logging.getLogger(__name__)


def topic_name(stream: str) -> str:
    """`catalog.product` → `orderflow.catalog.product` (namespace from settings)."""
    return f"{settings.KAFKA_TOPIC_NAMESPACE}.{stream}"


def dlq_topic(context: str) -> str:
    return topic_name(f"{context}.dlq")


def retry_topic(context: str) -> str:
    return topic_name(f"{context}.retry")


def base_config() -> dict:
    return {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, **settings.KAFKA_EXTRA_CONFIG}


def producer_config(**overrides) -> dict:
    return {
        **base_config(),
        # Idempotent producer: retries cannot duplicate or reorder within a partition.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "message.timeout.ms": settings.KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS,
        **overrides,
    }


def relay_producer_config(**overrides) -> dict:
    """The outbox relay's producer: `producer_config()` tuned for draining batches.

    - `linger.ms` 20: bigger record batches, so the broker (on the same cores here) does less work
      per event. It costs the relay no latency: `flush()`, which ends every relay batch, sends
      what is queued at once without waiting for linger.ms.
    - `delivery.report.only.error`: the relay needs no report for an acknowledged record (its row
      is already marked in the open transaction), only for a failed one; this saves a Python
      callback per event.
    """
    return producer_config(**{"linger.ms": 20, "delivery.report.only.error": True, **overrides})


def fetch_wait_max_ms(context: str) -> int:
    """How long `context`'s consumer lets a fetch wait on the broker: its own setting, if it has one
    (KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT), else KAFKA_CONSUMER_FETCH_WAIT_MAX_MS."""
    return settings.KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT.get(context, settings.KAFKA_CONSUMER_FETCH_WAIT_MAX_MS)


def consumer_config(group_id: str, **overrides) -> dict:
    return {
        **base_config(),
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # Offsets are stored only after the database commit and auto-committed from the store.
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.commit.interval.ms": 1000,
        "session.timeout.ms": settings.KAFKA_CONSUMER_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": settings.KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS,
        "fetch.wait.max.ms": settings.KAFKA_CONSUMER_FETCH_WAIT_MAX_MS,
        "partition.assignment.strategy": "cooperative-sticky",
        **overrides,
    }


_producer: Producer | None = None
_producer_pid: int | None = None
_producer_broken = False
_lock = threading.Lock()


def _on_producer_error(err) -> None:
    # A fatal error (e.g. the broker lost the idempotent producer's state, as after it was
    # replaced) makes this producer unusable for good: the next caller gets a new one.
    global _producer_broken
    if err.fatal():
        _producer_broken = True


def shared_producer() -> Producer:
    """One idempotent producer per process for the relay, re-created after fork (librdkafka is not fork-safe)
    and after it was reset or hit a fatal error."""
    global _producer, _producer_pid, _producer_broken
    with _lock:
        if _producer is None or _producer_pid != os.getpid() or _producer_broken:
            _producer = Producer(relay_producer_config(error_cb=_on_producer_error))
            _producer_pid = os.getpid()
            _producer_broken = False
        return _producer


def warm_up_shared_producer() -> None:
    """Create this process's producer now, in the background: a new idempotent producer needs
    ~0.5 s (metadata, producer id) before its first delivery, which the first event relayed by a
    fresh web worker or consumer would otherwise wait for. Failures are left to the first use."""

    def warm() -> None:
        try:
            shared_producer().list_topics(timeout=10)
        except Exception as exc:  # broker not up yet: the first relay run connects
            log.info("producer warm-up: %s", exc)

    threading.Thread(target=warm, name="kafka-producer-warm-up", daemon=True).start()


def reset_shared_producer() -> None:
    """Drop the shared producer (after a run that got nothing acknowledged, or when this process
    moves to another broker, as tests and benchmarks do): the next `shared_producer()` starts
    afresh with the settings of then, and the old one is closed once nothing refers to it, so it
    stops reconnecting. Unacknowledged rows are still unpublished in the outbox."""
    global _producer
    with _lock:
        _producer = None

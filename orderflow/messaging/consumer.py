"""A context's Kafka consumer: at-least-once delivery, exactly-once effect.

For each record: parse the CloudEvent, validate and upcast it against its contract, then in ONE
database transaction insert the inbox row (unique per consumer and event id) and run the handler.
Only after that commit is the offset stored (and auto-committed from the store), so a crash
anywhere replays the record and the inbox turns the replay into a no-op.

Failures: database/broker outages are transient and retried in place with backoff (the offset
does not move); a record that can never succeed (malformed, schema-invalid, unknown version of a
subscribed event, handler error) is dead-lettered to `<ns>.<context>.dlq` with headers saying
why, and the partition moves on.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connections, transaction

from contracts import ContractError, EventType, UnknownEventType, registry
from orderflow import tracing
from orderflow.faults import crash_point
from orderflow.messaging.envelope import Envelope, MalformedEvent
from orderflow.messaging.inbox import claim
from orderflow.messaging.kafka import consumer_config, dlq_topic, producer_config, topic_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """What a handler receives: the envelope's attributes and the (upcast, validated) data."""

    id: str
    type: EventType
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]


Handler = Callable[[Event], None]


def subscriptions(context: str) -> dict[str, Handler]:
    """The context's `handlers.SUBSCRIPTIONS`: {EventType: handler} → {ce type: handler}."""
    module = importlib.import_module(f"contexts.{context}.handlers")
    return {event_type.type: handler for event_type, handler in module.SUBSCRIPTIONS.items()}


class TransientError(Exception):
    """Raise from a handler when a dependency is briefly unavailable (e.g. a payment gateway
    timeout): the record is retried in place with backoff instead of being dead-lettered."""


class PermanentFailure(Exception):
    """This record can never be applied as it is; it goes to the dead-letter topic."""


TRANSIENT = (OperationalError, InterfaceError, TransientError)


class ContextConsumer:
    def __init__(
        self,
        context: str,
        *,
        group_id: str | None = None,
        batch_size: int = 500,
        handlers: dict[str, Handler] | None = None,
        config: dict | None = None,
    ) -> None:
        self.context = context
        self.name = group_id or f"orderflow.{context}"
        self.handlers = handlers if handlers is not None else subscriptions(context)
        self.batch_size = batch_size
        self.topics = sorted({topic_name(registry.get(t).stream) for t in self.handlers})
        # (context, name) pairs we handle: a newer version of one of them is a permanent failure,
        # anything else on these topics is not for us and is skipped.
        self._subscribed_names = {(registry.get(t).context, registry.get(t).name) for t in self.handlers}
        self._config = consumer_config(self.name, **(config or {}))
        self._dlq_producer: Producer | None = None
        self.stop_event = threading.Event()
        self.applied = 0
        self.skipped = 0
        self.dead_lettered = 0

    # -- the loop ------------------------------------------------------------------------------
    def run(self, *, idle_exit_after: float | None = None) -> None:
        if not self.topics:
            # A context that subscribes to nothing (yet) still runs its process, so deployments
            # stay uniform; it just waits to be stopped.
            log.info("consumer %s has no subscriptions; idle until stopped", self.name)
            self.stop_event.wait(idle_exit_after)
            return
        consumer = Consumer(self._config)
        assigned_at: list[float] = []

        def on_assign(_consumer, partitions) -> None:
            assigned_at.append(time.monotonic())
            log.info("consumer %s assigned %d partition(s)", self.name, len(partitions))

        consumer.subscribe(self.topics, on_assign=on_assign)
        log.info("consumer %s subscribed to %s", self.name, ", ".join(self.topics))
        last_message = 0.0
        try:
            while not self.stop_event.is_set():
                messages = consumer.consume(num_messages=self.batch_size, timeout=0.5)
                if not messages:
                    close_old_connections()
                    # Tests and one-off drains: stop once assigned and idle for a while.
                    if (
                        idle_exit_after is not None
                        and assigned_at
                        and (time.monotonic() - max(last_message, assigned_at[-1]) > idle_exit_after)
                    ):
                        return
                    continue
                last_message = time.monotonic()
                for message in messages:
                    if self.stop_event.is_set():
                        break  # drain: the rest of the batch is redelivered to whoever owns it next
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer %s: %s", self.name, error)
                        continue
                    self.process(message)
                    crash_point("consumer_before_offset_store")
                    consumer.store_offsets(message=message)
        finally:
            # Commits the stored offsets and leaves the group, so partitions move at once.
            try:
                consumer.commit(asynchronous=False)
            except Exception as exc:  # nothing stored yet, or broker gone: the inbox covers us
                log.debug("final commit: %s", exc)
            consumer.close()
            if self._dlq_producer is not None:
                self._dlq_producer.flush(10)
            log.info(
                "consumer %s stopped (applied %d, skipped %d, dead-lettered %d)",
                self.name,
                self.applied,
                self.skipped,
                self.dead_lettered,
            )

    def stop(self) -> None:
        self.stop_event.set()

    # -- one record --------------------------------------------------------------------------------
    def process(self, message: Message) -> None:
        """Apply one record with retries for transient failures; dead-letter permanent ones."""
        delay = 0.1
        while True:
            try:
                self.apply(message)
                return
            except PermanentFailure as exc:
                self.dead_letter(message, exc.__cause__ or exc)
                return
            except TRANSIENT as exc:
                if self.stop_event.is_set():
                    raise
                log.warning("consumer %s: transient failure, retrying in %.1fs: %s", self.name, delay, exc)
                connections[self.context].close()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def apply(self, message: Message) -> None:
        try:
            envelope = Envelope.from_kafka(message.headers(), message.value())
        except MalformedEvent as exc:
            raise PermanentFailure(str(exc)) from exc
        try:
            event_type, data = registry.upcast(envelope.type, envelope.data)
        except UnknownEventType:
            if self._is_newer_version_of_ours(envelope.type):
                raise PermanentFailure(f"unknown version {envelope.type}") from None
            self.skipped += 1  # another context's event on a shared topic: not ours
            return
        except ContractError as exc:
            raise PermanentFailure(str(exc)) from exc
        handler = self.handlers.get(event_type.type)
        if handler is None:
            self.skipped += 1
            return
        event = Event(envelope.id, event_type, envelope.source, envelope.subject, envelope.time, data)
        trace = tracing.from_headers(envelope.traceparent, envelope.correlation_id, causation_id=envelope.id)
        try:
            with tracing.use(trace), transaction.atomic(using=self.context):
                if not claim(
                    context=self.context,
                    consumer=self.name,
                    event_id=envelope.id,
                    type_=envelope.type,
                    topic=message.topic(),
                    partition=message.partition(),
                    offset=message.offset(),
                ):
                    self.skipped += 1  # already applied: a redelivery
                    return
                handler(event)
        except TRANSIENT:
            raise
        except DatabaseError as exc:
            # Integrity or data errors come from the handler's logic, not from an outage.
            raise PermanentFailure(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise PermanentFailure(f"{type(exc).__name__}: {exc}") from exc
        crash_point("consumer_after_db_commit")
        self.applied += 1

    def _is_newer_version_of_ours(self, ce_type: str) -> bool:
        parts = ce_type.split(".")
        return len(parts) == 4 and (parts[1], parts[2]) in self._subscribed_names

    def dead_letter(self, message: Message, reason: BaseException) -> None:
        """Publish the record unchanged to the context's DLQ with why; retry until acknowledged."""
        if self._dlq_producer is None:
            self._dlq_producer = Producer(producer_config())
        headers = list(message.headers() or [])
        headers += [
            ("dlq_error_class", type(reason).__name__.encode()),
            ("dlq_error_message", str(reason)[:2000].encode()),
            ("dlq_original_topic", message.topic().encode()),
            ("dlq_original_partition", str(message.partition()).encode()),
            ("dlq_original_offset", str(message.offset()).encode()),
            ("dlq_consumer", self.name.encode()),
        ]
        delay = 0.5
        errors: list[KafkaError] = []
        while True:
            errors.clear()
            self._dlq_producer.produce(
                dlq_topic(self.context),
                key=message.key(),
                value=message.value(),
                headers=headers,
                on_delivery=lambda err, _m: err and errors.append(err),
            )
            if self._dlq_producer.flush(10) == 0 and not errors:
                break
            log.error("consumer %s: could not dead-letter, retrying: %s", self.name, errors or "timeout")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        self.dead_lettered += 1
        log.error(
            "consumer %s dead-lettered %s[%d]@%d: %s",
            self.name,
            message.topic(),
            message.partition(),
            message.offset(),
            reason,
        )

"""A context's Kafka consumer: at-least-once delivery, exactly-once effect, nothing blocked.

For each record: parse the CloudEvent, validate and upcast it against its contract, then in ONE
database transaction insert the inbox row (unique per consumer and event id) and run the handler.
Only after that commit is the offset stored (and auto-committed from the store), so a crash
anywhere replays the record and the inbox turns the replay into a no-op.

Failures:
- transient (database or broker unavailable, `TransientError` from a handler): retried in place
  with backoff; the offset does not move past an unapplied record.
- permanent (malformed, schema-invalid, unknown version of a subscribed event, handler error):
  the record goes to the context's retry topic with a delay and an attempt count, and its key is
  parked so the aggregate's later records queue behind it (see orderflow/messaging/retry.py);
  after the last attempt it is dead-lettered — stored for the admin and published to
  `<ns>.<context>.dlq` with headers saying why — and the key's queue moves on.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connections

from contracts import ContractError, EventType, UnknownEventType, registry
from orderflow import tracing
from orderflow.faults import crash_point
from orderflow.messaging import deadletters
from orderflow.messaging.envelope import Envelope, MalformedEvent
from orderflow.messaging.inbox import claim, claim_many
from orderflow.messaging.kafka import (
    consumer_config,
    dlq_topic,
    fetch_wait_max_ms,
    producer_config,
    retry_topic,
    topic_name,
)
from orderflow.messaging.retry import Delivery, ParkedKeys, delivery_of, now_ms, retry_headers
from orderflow.unit_of_work import all_or_nothing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """What a handler receives: the envelope's attributes and the (upcast, validated) data.

    `trace` continues the producer's trace with this event as the cause; the consumer makes it
    current around a handler, and a batch handler passes it on with each event's effects.
    """

    id: str
    type: EventType
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]
    trace: tracing.TraceContext | None = field(default=None, compare=False)


Handler = Callable[[Event], None]
BatchHandler = Callable[[list[Event]], None]


def subscriptions(context: str) -> dict[str, Handler]:
    """The context's `handlers.SUBSCRIPTIONS`: {EventType: handler} → {ce type: handler}."""
    module = importlib.import_module(f"contexts.{context}.handlers")
    return {event_type.type: handler for event_type, handler in module.SUBSCRIPTIONS.items()}


def batch_subscriptions(context: str) -> dict[str, BatchHandler]:
    """The context's optional `handlers.BATCH_SUBSCRIPTIONS`: {EventType: batch handler}.

    A batch handler takes a run of consecutive fresh events (in delivery order) of the types it is
    registered for — one function registered for several types gets them mixed — inside the
    consumer's batch transaction, and must leave exactly what the types' one-by-one handlers
    would leave after applying them in that order. It is only an optimisation: a record that
    fails still goes through the one-by-one handler alone (see `handle_batch`).
    """
    module = importlib.import_module(f"contexts.{context}.handlers")
    batch = getattr(module, "BATCH_SUBSCRIPTIONS", {})
    return {event_type.type: handler for event_type, handler in batch.items()}


def context_group(context: str) -> str:
    """The context's consumer group (and inbox consumer name): per namespace, so stacks sharing a
    broker never share a group. With the default namespace it is `orderflow.<context>`."""
    return f"{settings.KAFKA_TOPIC_NAMESPACE}.{context}"


def consumer_topics(context: str, handled_types: Iterable[str]) -> list[str]:
    """The topics a consumer of `context` handling `handled_types` subscribes to: their streams
    and the context's retry topic (none when it handles nothing)."""
    streams = sorted({topic_name(registry.get(t).stream) for t in handled_types})
    return [*streams, retry_topic(context)] if streams else []


def _next_offsets(done: list[Message]) -> list[TopicPartition]:
    """The offsets to store for records done in delivery order: per partition, the one after
    its last record (one store call a batch instead of one a record)."""
    last: dict[tuple[str, int], Message] = {}
    for message in done:
        last[(message.topic(), message.partition())] = message
    offsets = []
    for (topic, partition), message in last.items():
        epoch = message.leader_epoch()  # as store_offsets(message=) would pass it, when known
        if epoch is None:
            offsets.append(TopicPartition(topic, partition, message.offset() + 1))
        else:
            offsets.append(TopicPartition(topic, partition, message.offset() + 1, leader_epoch=epoch))
    return offsets


class TransientError(Exception):
    """Raise from a handler when a dependency is briefly unavailable (e.g. a payment gateway
    timeout): the record is retried in place with backoff instead of being dead-lettered."""


class PermanentFailure(Exception):
    """This record cannot be applied as it is now: retry later, then dead-letter."""


TRANSIENT = (OperationalError, InterfaceError, TransientError)


class ContextConsumer:
    def __init__(
        self,
        context: str,
        *,
        group_id: str | None = None,
        batch_size: int = 500,
        handlers: dict[str, Handler] | None = None,
        batch_handlers: dict[str, BatchHandler] | None = None,
        config: dict | None = None,
        retry_delays: list[float] | None = None,
    ) -> None:
        self.context = context
        self.name = group_id or context_group(context)
        self.handlers = handlers if handlers is not None else subscriptions(context)
        # Handlers given by the caller (tests) are not paired with the context's batch handlers.
        if batch_handlers is None:
            batch_handlers = batch_subscriptions(context) if handlers is None else {}
        unknown = set(batch_handlers) - set(self.handlers)
        if unknown:
            raise ValueError(f"batch handler(s) without a one-by-one handler: {', '.join(sorted(unknown))}")
        self.batch_handlers = batch_handlers
        self.batch_size = batch_size
        self.retry_topic = retry_topic(context)
        self.retry_delays = list(settings.CONSUMER_RETRY_DELAYS if retry_delays is None else retry_delays)
        self.topics = consumer_topics(context, self.handlers)
        # (context, name) pairs we handle: a newer version of one of them is a permanent failure,
        # anything else on these topics is not for us and is skipped.
        self._subscribed_names = {(registry.get(t).context, registry.get(t).name) for t in self.handlers}
        self._config = consumer_config(self.name, **{"fetch.wait.max.ms": fetch_wait_max_ms(context), **(config or {})})
        self._producer: Producer | None = None
        self.parked = ParkedKeys(context, self.name)
        self._paused: dict[tuple[str, int], int] = {}  # retry partitions waiting until (epoch ms)
        self.stop_event = threading.Event()
        self.applied = 0
        self.skipped = 0
        self.retried = 0
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
        # A batch allocates tens of thousands of short-lived objects (records, payloads, rows);
        # with the default thresholds the collector ran every 700 allocations and its older
        # generations kept rescanning Django's long-lived objects (bench: 30% of a 3,000-event
        # run). Everything alive now is frozen out of its scans. The youngest generation's
        # threshold is above what a 500-event batch keeps alive at once (they are freed when it
        # ends, which lowers the count again), so a collection is rare instead of one per batch
        # traversing all of it: 10,000 cost 6–8 µs per event, 100,000 nothing measurable
        # (benchmarks.md, eleventh round). Cyclic garbage still counts towards it, so it is
        # collected once 100,000 such objects piled up.
        gc.freeze()
        gc.set_threshold(100_000, *gc.get_threshold()[1:])

        def on_assign(_consumer, partitions) -> None:
            assigned_at.append(time.monotonic())
            try:
                self.parked.reload()  # another member may have parked keys of these partitions
            except DatabaseError as exc:  # never raise out of librdkafka's callback
                connections[self.context].close()
                self.parked.stale = True
                log.warning(
                    "consumer %s: parked keys not reloaded (%s); retrying before the next record", self.name, exc
                )
            log.info("consumer %s assigned %d partition(s)", self.name, len(partitions))

        def on_revoke(_consumer, partitions) -> None:
            for tp in partitions:
                self._paused.pop((tp.topic, tp.partition), None)

        consumer.subscribe(self.topics, on_assign=on_assign, on_revoke=on_revoke)
        log.info("consumer %s subscribed to %s", self.name, ", ".join(self.topics))
        last_message = 0.0
        try:
            while not self.stop_event.is_set():
                self._resume_due(consumer)
                # Block for the first record only, then take what is already buffered: consume(n,
                # timeout) would wait for n records or the whole timeout, adding up to 500 ms a hop.
                first = consumer.poll(timeout=0.5)
                messages = [] if first is None else [first, *consumer.consume(self.batch_size - 1, timeout=0)]
                if not messages:
                    close_old_connections()
                    # Tests and one-off drains: stop once assigned and idle for a while.
                    if (
                        idle_exit_after is not None
                        and assigned_at
                        and not self._paused
                        and time.monotonic() - max(last_message, assigned_at[-1]) > idle_exit_after
                    ):
                        return
                    continue
                last_message = time.monotonic()
                ready: list[Message] = []
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer %s: %s", self.name, error)
                        continue
                    if (message.topic(), message.partition()) in self._paused or self._defer(consumer, message):
                        continue  # a delayed retry: fetched again when its partition resumes
                    ready.append(message)
                done = self.handle_batch(ready)
                if done:
                    crash_point("consumer_before_offset_store")
                    consumer.store_offsets(offsets=_next_offsets(done))
        finally:
            # Commits the stored offsets and leaves the group, so partitions move at once.
            try:
                consumer.commit(asynchronous=False)
            except Exception as exc:  # nothing stored yet, or broker gone: the inbox covers us
                log.debug("final commit: %s", exc)
            consumer.close()
            if self._producer is not None:
                self._producer.flush(10)
            log.info(
                "consumer %s stopped (applied %d, skipped %d, retried %d, dead-lettered %d)",
                self.name,
                self.applied,
                self.skipped,
                self.retried,
                self.dead_lettered,
            )

    def stop(self) -> None:
        self.stop_event.set()

    def _defer(self, consumer: Consumer, message: Message) -> bool:
        """Hold a retry record until its time: pause its partition and rewind to it."""
        if message.topic() != self.retry_topic:
            return False
        due = delivery_of(message, self.retry_topic).not_before_ms
        if due <= now_ms():
            return False
        tp = TopicPartition(message.topic(), message.partition(), message.offset())
        consumer.pause([tp])
        consumer.seek(tp)
        self._paused[(message.topic(), message.partition())] = due
        return True

    def _resume_due(self, consumer: Consumer) -> None:
        now = now_ms()
        due = [tp for tp, until in self._paused.items() if until <= now]
        if due:
            consumer.resume([TopicPartition(t, p) for t, p in due])
            for tp in due:
                del self._paused[tp]

    # -- a batch -----------------------------------------------------------------------------------
    def handle_batch(self, messages: list[Message]) -> list[Message]:
        """Apply fetched records; returns those done (applied, skipped, retried or dead-lettered),
        in order, whose offsets may be stored.

        Fast path: when no record needs the failure machinery, the whole batch is one transaction
        with one bulk inbox claim — one commit instead of one per record — and runs of one event
        type go to the context's batch handler for that type, if it has one. If anything in it
        fails, it is rolled back whole and the records go one by one through `handle` and the
        one-by-one handlers, which isolates the failing one. Stopping (SIGTERM) leaves the rest
        of the batch for the next owner.
        """
        if self.parked.stale:
            self._reload_parked()
            if self.parked.stale:
                return []  # stopping: nothing done, the records are redelivered
        if not messages:
            return []
        prepared = self._prepare(messages)
        if prepared is not None:
            try:
                self._in_place("batch", lambda: self._apply_together(prepared))
            except TRANSIENT:  # stopping during an outage: nothing of the batch is done
                return []
            except Exception as exc:  # one record is bad: find it the slow way
                log.info("consumer %s: batch of %d failed (%s); applying one by one", self.name, len(messages), exc)
            else:
                crash_point("consumer_after_db_commit")
                return messages
        done = []
        for message in messages:
            if self.stop_event.is_set():
                break
            self.handle(message)
            done.append(message)
        return done

    def _reload_parked(self) -> None:
        """Reload the parked keys, retrying an outage in place like any transient failure."""
        try:
            self._in_place("reloading parked keys", self.parked.reload)
        except TRANSIENT:
            pass  # stopping: the cache stays stale and the caller does nothing

    def _in_place(self, what: str, work: Callable[[], Any]) -> Any:
        """Run `work`, retrying outages (database, `TransientError`) with backoff; the offset does
        not move meanwhile. When stopping, the outage's exception is raised to the caller."""
        delay = 0.1
        while True:
            try:
                return work()
            except TRANSIENT as exc:
                if self.stop_event.is_set():
                    raise
                log.warning("consumer %s: transient failure, retrying the %s in %.1fs: %s", self.name, what, delay, exc)
                connections[self.context].close()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _prepare(self, messages: list[Message]) -> list[tuple[Message, Envelope, Event | None]] | None:
        """Decode a batch for the fast path, or None if any record needs the slow path."""
        prepared = []
        for message in messages:
            if message.topic() == self.retry_topic:
                return None
            key = message.key()
            if key and self.parked.is_parked(key.decode("utf-8", "replace")):
                return None
            try:
                envelope, event = self._decode(message)
            except PermanentFailure:
                return None
            prepared.append((message, envelope, event))
        return prepared

    def _apply_together(self, prepared: list[tuple[Message, Envelope, Event | None]]) -> None:
        mine = [(m, envelope, event) for m, envelope, event in prepared if event is not None]
        skipped = len(prepared) - len(mine)
        applied = 0
        with all_or_nothing(self.context):
            fresh = claim_many(
                context=self.context,
                consumer=self.name,
                records=[(env.id, env.type, m.topic(), m.partition(), m.offset()) for m, env, _ in mine],
            )
            events: list[Event] = []
            for _message, envelope, event in mine:
                if envelope.id not in fresh:
                    skipped += 1  # applied before (a redelivery), or twice in this batch
                    continue
                fresh.discard(envelope.id)
                events.append(event)
            # Consecutive events with the same batch handler go to it together (one type, or
            # several types one handler takes mixed, like orders' saga replies). Only consecutive
            # ones: grouping across another handler could move an order's OrderPlaced past its
            # OrderCancelled, or one order's stock release past another's reservation. Runs keep
            # the batch's delivery order exactly, so the outcome is the one-by-one outcome.
            start = 0
            while start < len(events):
                batch_handler = self.batch_handlers.get(events[start].type.type)
                end = start + 1
                if batch_handler is not None:
                    while end < len(events) and self.batch_handlers.get(events[end].type.type) is batch_handler:
                        end += 1
                    batch_handler(events[start:end])
                else:
                    handler = self.handlers[events[start].type.type]
                    with tracing.use(events[start].trace):
                        handler(events[start])
                start = end
            applied = len(events)
        self.applied += applied
        self.skipped += skipped

    # -- one record --------------------------------------------------------------------------------
    def handle(self, message: Message) -> None:
        delivery = delivery_of(message, self.retry_topic)
        key = delivery.key
        if key is not None and self.parked.is_parked(key):
            queue = self.parked.queue(key)
            if delivery.origin not in queue and not delivery.from_retry:
                # The aggregate waits behind a failed record: queue up behind it, in order.
                self.parked.park(key, delivery.origin)
                self._to_retry(delivery, attempt=0, due_ms=self.parked.head_not_before_ms(key), error="queued")
                return
            if delivery.origin in queue and queue[0] != delivery.origin:
                # Not the head yet: go round again, due when the head is.
                self._to_retry(
                    delivery,
                    attempt=delivery.attempt,
                    due_ms=self.parked.head_not_before_ms(key),
                    error="waiting for an earlier record of this key",
                )
                return
        try:
            self.process(message)
        except PermanentFailure as failure:
            self._failed(delivery, failure)
            return
        if key is not None and delivery.origin in self.parked.queue(key):
            self.parked.release(key, delivery.origin)

    def _failed(self, delivery: Delivery, failure: PermanentFailure) -> None:
        attempt = delivery.attempt + 1
        key = delivery.key
        reason = failure.__cause__ or failure
        if attempt > len(self.retry_delays):
            self.dead_letter(delivery, reason, attempts=attempt)
            if key is not None:
                self.parked.release(key, delivery.origin)
            return
        due = now_ms() + int(self.retry_delays[attempt - 1] * 1000)
        if key is not None:
            self.parked.park(key, delivery.origin, head_not_before_ms=due)
        self._to_retry(delivery, attempt=attempt, due_ms=due, error=f"{type(reason).__name__}: {reason}")
        self.retried += 1
        log.warning(
            "consumer %s: %s failed (attempt %d), retrying in %.1fs: %s",
            self.name,
            delivery.origin,
            attempt,
            self.retry_delays[attempt - 1],
            reason,
        )

    def process(self, message: Message) -> None:
        """Apply one record, retrying transient failures in place with backoff."""
        self._in_place("record", lambda: self.apply(message))

    def _decode(self, message: Message) -> tuple[Envelope, Event | None]:
        """Parse, validate and upcast; the Event is None when the record is not for us."""
        try:
            envelope = Envelope.from_kafka(message.headers(), message.value())
        except MalformedEvent as exc:
            raise PermanentFailure(str(exc)) from exc
        try:
            event_type, data = registry.upcast(envelope.type, envelope.data)
        except UnknownEventType:
            if self._is_newer_version_of_ours(envelope.type):
                raise PermanentFailure(f"unknown version {envelope.type}") from None
            return envelope, None  # another context's event on a shared topic: not ours
        except ContractError as exc:
            raise PermanentFailure(str(exc)) from exc
        if event_type.type not in self.handlers:
            return envelope, None
        trace = tracing.from_headers(envelope.traceparent, envelope.correlation_id, causation_id=envelope.id)
        return envelope, Event(envelope.id, event_type, envelope.source, envelope.subject, envelope.time, data, trace)

    def apply(self, message: Message) -> None:
        envelope, event = self._decode(message)
        if event is None:
            self.skipped += 1
            return
        handler = self.handlers[event.type.type]
        try:
            with tracing.use(event.trace), all_or_nothing(self.context):
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

    # -- publishing to the retry and dead-letter topics ---------------------------------------------
    def _publish(self, topic: str, delivery: Delivery, headers: list[tuple[str, bytes]]) -> None:
        """Produce and wait for the acknowledgement, retrying until the broker takes it: the
        offset must never move past a record that is neither applied nor safely elsewhere."""
        if self._producer is None:
            self._producer = Producer(producer_config())
        delay = 0.5
        errors: list[KafkaError] = []
        while True:
            errors.clear()
            self._producer.produce(
                topic,
                key=delivery.message.key(),
                value=delivery.message.value(),
                headers=headers,
                on_delivery=lambda err, _m: err and errors.append(err),
            )
            if self._producer.flush(10) == 0 and not errors:
                return
            log.error("consumer %s: could not publish to %s, retrying: %s", self.name, topic, errors or "timeout")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _to_retry(self, delivery: Delivery, *, attempt: int, due_ms: int, error: str) -> None:
        self._publish(
            self.retry_topic, delivery, retry_headers(delivery, attempt=attempt, not_before_ms=due_ms, error=error)
        )

    def dead_letter(self, delivery: Delivery, reason: BaseException, *, attempts: int) -> None:
        """Keep the record for the admin and publish it, unchanged, to the DLQ with why."""
        deadletters.record(context=self.context, consumer=self.name, delivery=delivery, error=reason, attempts=attempts)
        topic, partition, offset = delivery.origin_coordinates
        headers = [
            *delivery.headers,
            ("dlq_error_class", type(reason).__name__.encode()),
            ("dlq_error_message", str(reason)[:2000].encode()),
            ("dlq_original_topic", topic.encode()),
            ("dlq_original_partition", str(partition).encode()),
            ("dlq_original_offset", str(offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_consumer", self.name.encode()),
        ]
        self._publish(dlq_topic(self.context), delivery, headers)
        self.dead_lettered += 1
        log.error("consumer %s dead-lettered %s after %d attempt(s): %s", self.name, delivery.origin, attempts, reason)

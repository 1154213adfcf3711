"""The polling outbox relay: drain a context's outbox to Kafka in position order.

One active relay per context: every batch runs in a transaction that holds the context's
transaction-level advisory lock, so a second relay (another worker, beat and a kick at once)
simply finds nothing to do. A batch's rows are claimed (marked published) in that transaction,
produced, and the transaction commits only once the broker acknowledged them; a failed row and the
later rows of its aggregate are unmarked again before the commit. A crash before the commit
republishes the batch, which the consumers' inbox makes harmless (at-least-once delivery,
exactly-once effect).

A batch is claimed in chunks of CLAIM_CHUNK rows through a psycopg pipeline: the claim of the
next chunk is sent before the current chunk is produced, so PostgreSQL updates those rows while
this process produces, and the database's work and the producer's overlap instead of taking turns.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer
from django.db import OperationalError, connections, transaction
from psycopg.errors import LockNotAvailable

from orderflow.faults import crash_point
from orderflow.messaging import bulk
from orderflow.messaging.envelope import SPECVERSION
from orderflow.messaging.outbox import outbox_model

log = logging.getLogger(__name__)


def relay_lock_key(context: str) -> int:
    # A stable signed 64-bit key per context for pg advisory locks.
    return zlib.crc32(f"orderflow.relay.{context}".encode())


@dataclass
class RelayResult:
    selected: int = 0
    published: int = 0
    failed: int = 0
    batches: int = 0
    locked_out: bool = False


# The batch's rows, picked in position order. Fast path: nothing is parked, so the oldest
# unpublished rows are the batch.
# `position > after`: a batch's later chunks start after the previous chunk (which this transaction
# has just marked, and which an index scan from the start would have to step over row by row). A
# row that commits meanwhile with a lower position waits for the next batch.
_PICK = """
    SELECT position FROM {table} WHERE published_at IS NULL AND position > %(after)s
    ORDER BY position LIMIT %(limit)s
"""
# Some aggregates are parked (a row failed and waits for its next attempt): leave out every row of
# those aggregates, so they keep their order, and let all the others flow.
_PICK_AROUND_PARKED = """
    SELECT o.position FROM {table} o
    WHERE o.published_at IS NULL AND o.position > %(after)s
      AND (o.aggregatetype, o.aggregateid) NOT IN (
          SELECT aggregatetype, aggregateid FROM {table}
          WHERE published_at IS NULL AND next_attempt_at > now())
    ORDER BY o.position
    LIMIT %(limit)s
"""
# Claim the batch and mark it published in one statement: one pass over the rows takes their locks
# and writes their new versions (a SELECT … FOR UPDATE and then an UPDATE wrote every row twice).
# The transaction commits only after the broker acknowledged the batch, so until then nobody sees
# the rows as published; a crash or a rollback leaves them unpublished. The values come out ready
# to send: the event id as text and the CloudEvents time formatted like `datetime.isoformat()` of
# the UTC timestamp (`.ffffff` only when there are microseconds), so Python does almost nothing
# per row. RETURNING order is not guaranteed: `_claim` sorts if needed.
_CLAIM = """
    UPDATE {table} SET published_at = now()
    WHERE position = ANY(ARRAY({pick})) AND published_at IS NULL
    RETURNING position, aggregateid, topic, payload::text, id::text, type,
        replace(to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '.000000', '') || '+00:00',
        headers::text, next_attempt_at IS NOT NULL
"""
_BEGIN = """
    SELECT pg_try_advisory_xact_lock(%(key)s), set_config('lock_timeout', '2s', true),
           EXISTS (SELECT 1 FROM {table} WHERE published_at IS NULL AND next_attempt_at IS NOT NULL)
"""
MAX_BACKOFF_S = 300
# Rows per claim statement: small enough that the first chunk (which nothing overlaps) is short,
# large enough that a statement's fixed cost is spread thin.
CLAIM_CHUNK = 1000


def _claim(cursor, claim: str, *, after: int, limit: int) -> list[tuple]:
    cursor.execute(claim, {"after": after, "limit": limit})
    return _sorted(cursor.fetchall())


def _sorted(rows: list[tuple]) -> list[tuple]:
    """RETURNING gives no order: put the rows in position order (they nearly always are)."""
    if any(rows[i][0] > rows[i + 1][0] for i in range(len(rows) - 1)):
        rows.sort(key=lambda row: row[0])
    return rows


class _Failures:
    """The one delivery callback of a batch. Acknowledgements need nothing (the rows are already
    marked in the open transaction); a failure is recorded with what identifies its row."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, bytes | None, bytes | None, str]] = []

    def __call__(self, err, msg) -> None:
        if err is not None:
            self.reports.append((msg.topic(), msg.key(), msg.value(), f"{err.name()}: {err.str()}"))

    def by_position(self, rows: list[tuple]) -> dict[int, str]:
        """Map each failure report to its row: the first row not yet matched with the same topic,
        key and value (a partition reports in produce order, so equal messages match in order)."""
        if not self.reports:
            return {}
        waiting: dict[tuple, list[int]] = {}
        for position, key, topic, value, *_ in reversed(rows):
            waiting.setdefault((topic, key.encode(), value.encode()), []).append(position)
        errors: dict[int, str] = {}
        for topic, key, value, message in self.reports:
            positions = waiting.get((topic, key, value))
            if positions:
                errors[positions.pop()] = message
        return errors


_STR = {str}


def _headers(context: str, event_id: str, ce_type: str, subject: str, ce_time: str, extra: str) -> list[tuple]:
    headers = [
        ("ce_specversion", SPECVERSION),
        ("ce_id", event_id),
        ("ce_type", ce_type),
        ("ce_source", f"/orderflow/{context}"),
        ("ce_subject", subject),
        ("ce_time", ce_time),
        ("content-type", "application/json"),
    ]
    if extra != "{}":
        values = orjson.loads(extra)
        # Header values are strings in practice (outbox.record writes only strings): check that in
        # one C-level pass rather than converting value by value.
        if set(map(type, values.values())) <= _STR:
            headers.extend(values.items())
        else:
            headers.extend((k, v if isinstance(v, str) else str(v)) for k, v in values.items())
    return headers


def relay_batch(*, context: str, producer: Producer, batch_size: int, flush_timeout: float = 30.0) -> RelayResult:
    """Publish one batch. Returns counts; `locked_out` if another relay holds the context, or a
    pending row stayed locked by another transaction (the next run tries again)."""
    try:
        return _relay_batch(context=context, producer=producer, batch_size=batch_size, flush_timeout=flush_timeout)
    except OperationalError as exc:
        if not isinstance(exc.__cause__, LockNotAvailable):
            raise
        log.info("relay %s: a pending row is locked by another transaction; next run", context)
        return RelayResult(batches=1, locked_out=True)


def _relay_batch(*, context: str, producer: Producer, batch_size: int, flush_timeout: float) -> RelayResult:
    table = connections[context].ops.quote_name(outbox_model(context)._meta.db_table)
    result = RelayResult(batches=1)
    # Prepared (bulk.PreparedCursor): a run's statements are the same every time, and at a
    # hundred small runs a second their parsing and planning cost more than their execution.
    with transaction.atomic(using=context), bulk.PreparedCursor(context) as cursor:
        # Not SKIP LOCKED: the advisory lock already makes this the only relay, and skipping a row
        # another transaction holds (an admin retry, say) would let its aggregate's next event
        # overtake it. The claim waits briefly instead; on timeout the run ends, nothing was
        # produced, and the next run retries.
        cursor.execute(_BEGIN.format(table=table), {"key": relay_lock_key(context)})
        locked, _, any_parked = cursor.fetchone()
        if not locked:
            result.locked_out = True
            return result
        sender = _Sender(context, producer)
        rows, result.locked_out = _claim_and_send(context, cursor, table, any_parked, batch_size, sender.send)
        if not rows:
            return result
        errors = sender.wait(rows, flush_timeout)
        crash_point("relay_after_ack")
        result.selected = len(rows)
        result.published = _settle(cursor, table, rows, errors)
        result.failed = len(errors)
        if errors:
            log.warning(
                "relay %s: %d event(s) not acknowledged, first: %s", context, len(errors), next(iter(errors.values()))
            )
    return result


def _claim_and_send(
    context: str, cursor, table: str, around_parked: bool, batch_size: int, send: Callable[[list[tuple]], None]
) -> tuple[list[tuple], bool]:
    """Claim up to `batch_size` rows chunk by chunk and hand each chunk to `send` while PostgreSQL
    claims the next one. Returns the claimed rows and whether claiming stopped at a row another
    transaction kept locked.

    A later chunk runs in a savepoint: if it times out on a locked row, the chunks already sent stay
    claimed (and are settled as usual) instead of the whole batch being rolled back and sent again.
    The first chunk needs none; its timeout ends the batch before anything was produced."""
    claim = _CLAIM.format(table=table, pick=(_PICK_AROUND_PARKED if around_parked else _PICK).format(table=table))
    rows = _claim(cursor, claim, after=0, limit=min(CLAIM_CHUNK, batch_size))
    if len(rows) < CLAIM_CHUNK or len(rows) >= batch_size:
        send(rows)
        return rows, False
    control = connections[context].cursor()  # savepoints; `cursor` only ever holds a claim's result
    chunk = rows
    try:
        with connections[context].connection.pipeline():
            while chunk:
                left = batch_size - len(rows)
                following = left > 0 and len(chunk) == CLAIM_CHUNK
                if following:  # sent now, executed by PostgreSQL while this chunk is produced
                    control.execute("SAVEPOINT relay_chunk")
                    cursor.execute(claim, {"after": chunk[-1][0], "limit": min(CLAIM_CHUNK, left)})
                send(chunk)
                if not following:
                    break
                chunk = _sorted(cursor.fetchall())
                control.execute("RELEASE SAVEPOINT relay_chunk")
                rows.extend(chunk)
    except (OperationalError, LockNotAvailable) as exc:
        if not isinstance(exc, LockNotAvailable) and not isinstance(exc.__cause__, LockNotAvailable):
            raise
        control.execute("ROLLBACK TO SAVEPOINT relay_chunk")  # the pipeline has ended and synced
        return rows, True
    finally:
        control.close()
    return rows, False


class _Sender:
    """Produces claimed rows, then waits for the broker; collects what it refused or failed."""

    def __init__(self, context: str, producer: Producer) -> None:
        self.context = context
        self.producer = producer
        self.failures = _Failures()
        self.errors: dict[int, str] = {}
        self.refused: set[str] = set()  # aggregates with a row the producer refused outright

    def send(self, rows: list[tuple]) -> None:
        context, produce, failures, refused = self.context, self.producer.produce, self.failures, self.refused
        for position, key, topic, value, event_id, ce_type, ce_time, extra, _retried in rows:
            if refused and key in refused:
                continue  # never let a later event overtake the refused one
            headers = _headers(context, event_id, ce_type, key, ce_time, extra)
            while True:
                try:
                    produce(topic, value, key, headers=headers, on_delivery=failures)
                    break
                except BufferError:
                    self.producer.poll(0.05)  # local queue full: let deliveries drain
                except KafkaException as exc:  # e.g. larger than message.max.bytes
                    self.errors[position] = f"{exc.args[0].name()}: {exc.args[0].str()}"
                    refused.add(key)
                    break

    def wait(self, rows: list[tuple], flush_timeout: float) -> dict[int, str]:
        """Wait for every acknowledgement; returns the failures by position."""
        errors = self.errors
        try:
            remaining = self.producer.flush(flush_timeout)
        except KafkaException as exc:  # a fatal producer error: nothing of this batch is acknowledged
            remaining = len(rows)
            for position, *_ in rows:
                errors.setdefault(position, f"{exc.args[0].name()}: {exc.args[0].str()}")
        if remaining:
            for position, *_ in rows:
                errors.setdefault(position, f"{KafkaError._MSG_TIMED_OUT}: not acknowledged within {flush_timeout}s")
        for position, message in self.failures.by_position(rows).items():
            errors.setdefault(position, message)
        return errors


def _settle(cursor, table: str, rows: list[tuple], errors: dict[int, str]) -> int:
    """Undo the claim where the broker did not take a row, and return how many stay published.

    Keep per-aggregate order: after an aggregate's first failed event, none of its later events in
    this batch count as published (they are sent again after the failed one)."""
    blocked: set[str] = set()
    held: list[int] = []  # later rows of a failed aggregate: back to unpublished, untouched otherwise
    retried: list[int] = []  # published rows that had been parked: no next attempt any more
    for position, key, *_, was_parked in rows:
        if position in errors or key in blocked:
            blocked.add(key)
            if position not in errors:
                held.append(position)
        elif was_parked:
            retried.append(position)
    if retried:
        cursor.execute(f"UPDATE {table} SET next_attempt_at = NULL WHERE position = ANY(%s)", [retried])
    if held:
        cursor.execute(f"UPDATE {table} SET published_at = NULL WHERE position = ANY(%s)", [held])
    for position, message in errors.items():
        # Park the row (and so its aggregate) until its next attempt: 1, 2, 4 … s, at most
        # MAX_BACKOFF_S (`attempts` on the right is the value before this failure).
        cursor.execute(
            f"UPDATE {table} SET published_at = NULL, attempts = attempts + 1, last_error = %s, "
            # clock_timestamp(), not now(): now() is when this transaction began, before the
            # produce and flush, so a short backoff would already be over.
            f"next_attempt_at = clock_timestamp() + make_interval(secs => LEAST(power(2, attempts), %s)) "
            f"WHERE position = %s",
            [message, MAX_BACKOFF_S, position],
        )
    return len(rows) - len(held) - len(errors)


def relay_outbox(*, context: str, producer: Producer, batch_size: int = 1000, max_seconds: float = 5.0) -> RelayResult:
    """Drain until empty, locked out, nothing could be published, or `max_seconds` (beat or a
    kick runs it again). A failed row parks its aggregate; the others keep flowing."""
    total = RelayResult(batches=0)
    deadline = time.monotonic() + max_seconds
    while True:
        batch = relay_batch(context=context, producer=producer, batch_size=batch_size)
        total.batches += 1
        total.published += batch.published
        total.failed += batch.failed
        total.locked_out = batch.locked_out
        if batch.locked_out or batch.published == 0 or batch.selected < batch_size or time.monotonic() >= deadline:
            return total


def purge_published(*, context: str, older_than) -> int:
    """Delete rows published before `older_than`; unpublished rows are never purged."""
    deleted, _ = (
        outbox_model(context)
        .objects.using(context)
        .filter(published_at__isnull=False, published_at__lt=older_than)
        .delete()
    )
    return deleted


def republish_retained(*, context: str) -> int:
    """Mark every retained row unpublished so the relay sends it again, in position order.

    For a fresh broker (the embedded, memory-only one after a restart, or a new cluster after a
    disaster): consumers' inboxes drop what they already applied.
    """
    return outbox_model(context).objects.using(context).filter(published_at__isnull=False).update(published_at=None)

"""Celery entry points of the backbone: thin wrappers around relay and purge."""

from __future__ import annotations

import logging
import time

import redis
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from orderflow.contexts_registry import context_queue
from orderflow.messaging import relay
from orderflow.messaging.kafka import reset_shared_producer, shared_producer

log = logging.getLogger(__name__)

_redis: redis.Redis | None = None


def _kick_key(context: str) -> str:
    return f"orderflow:relay-kick:{settings.KAFKA_TOPIC_NAMESPACE}:{context}"


def _redis_client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    return _redis


def kick(context: str) -> None:
    """Enqueue one relay run unless one is already queued and not yet started.

    The queued run clears the flag before it reads the outbox, so a commit that lands after the
    flag was cleared enqueues a new run and is never left waiting for beat.
    """
    try:
        if _redis_client().set(_kick_key(context), "1", nx=True, ex=10):
            relay_outbox.apply_async(args=[context], expires=10, queue=context_queue(context))
    except Exception:  # The row is committed; beat publishes it within a second anyway.
        log.warning("could not kick the %s relay; beat will pick the event up", context, exc_info=True)


def _attempts_key(context: str) -> str:
    return f"orderflow:relay-attempts:{settings.KAFKA_TOPIC_NAMESPACE}:{context}"


def relay_with_handover(*, context: str, max_seconds: float) -> relay.RelayResult:
    """A relay run for `context` that no commit can slip past.

    One relay runs per context (advisory lock) and a locked-out attempt does nothing, so a row
    committed after the lock holder's last read would wait for beat. Every attempt therefore
    counts itself in Redis first; the holder compares the count after its run with the one before
    and runs again if someone tried meanwhile. Whoever was locked out is covered: their rows were
    committed before they counted, so before the holder's next read. Without Redis it is a plain
    run (beat's one-second run stays the safety net).
    """
    client = _redis_client()
    key = _attempts_key(context)
    try:
        seen, _ = client.pipeline().incr(key).expire(key, 86400).execute()
    except redis.RedisError:
        seen = None
    total = relay.RelayResult(batches=0)
    deadline = time.monotonic() + max_seconds
    while True:
        result = relay.relay_outbox(
            context=context,
            producer=shared_producer(),
            batch_size=settings.OUTBOX_RELAY_BATCH_SIZE,
            max_seconds=max(deadline - time.monotonic(), 0.0),
        )
        total.batches += result.batches
        total.published += result.published
        total.failed += result.failed
        total.locked_out = result.locked_out
        if seen is None or result.locked_out or result.failed or time.monotonic() >= deadline:
            return total
        try:
            now = int(client.get(key) or 0)
        except redis.RedisError:
            return total
        if now <= seen:
            return total
        seen = now  # someone was locked out by this run: go again for their rows


def relay_listened(*, context: str, max_seconds: float) -> relay.RelayResult:
    """A listening relay's run (OUTBOX_RELAY_LISTEN): the hand-over's Redis round trips only when
    it was locked out.

    Every commit on the context notifies the listener, including those that land while it runs
    (it hears them at its next wait and runs again), so a run it holds needs no count of who was
    locked out meanwhile; and it counts its own attempt only when it could not take the lock,
    after which the full hand-over covers it (its rows were committed before it counted). Those
    two round trips were 0.3-0.5 ms of a one-row run's 0.9-1.1 ms of CPU (benchmarks.md,
    twelfth round)."""
    result = relay.relay_outbox(
        context=context,
        producer=shared_producer(),
        batch_size=settings.OUTBOX_RELAY_BATCH_SIZE,
        max_seconds=max_seconds,
    )
    if not result.locked_out:
        return result
    again = relay_with_handover(context=context, max_seconds=max_seconds)
    again.batches += result.batches
    again.published += result.published
    again.failed += result.failed
    return again


def relay_here(context: str, *, listened: bool = False) -> bool:
    """Run the context's relay in this process (outbox.inline_relay); True if it is done (or a
    relay holding the context will cover it), False if a worker must take over: a failure, or maybe
    rows left after `OUTBOX_RELAY_INLINE_MAX_SECONDS`. `listened`: the run of a listening relay
    (`relay_listened`). Never raises: it runs in a commit hook."""
    run = relay_listened if listened else relay_with_handover
    try:
        result = run(context=context, max_seconds=settings.OUTBOX_RELAY_INLINE_MAX_SECONDS)
    except Exception:
        log.warning("inline relay of %s failed; handing it to a worker", context, exc_info=True)
        return False
    if result.failed and not result.published:
        reset_shared_producer()
    if result.failed:
        return False
    # Published a full batch or more: the run may have ended at its deadline with rows left.
    return result.locked_out or result.published < settings.OUTBOX_RELAY_BATCH_SIZE


@shared_task(name="orderflow.relay_outbox", ignore_result=True)
def relay_outbox(context: str) -> dict[str, int]:
    try:
        _redis_client().delete(_kick_key(context))
    except redis.RedisError:
        pass
    result = relay_with_handover(context=context, max_seconds=settings.OUTBOX_RELAY_MAX_SECONDS)
    if result.failed and not result.published:
        # Nothing got through: the producer itself may be stuck (a replaced broker, a fenced
        # idempotent producer). A fresh one costs nothing; duplicates are dropped by the inboxes.
        reset_shared_producer()
    if result.published or result.failed:
        log.info(
            "relay %s: published %d, failed %d in %d batch(es)",
            context,
            result.published,
            result.failed,
            result.batches,
        )
    return {"published": result.published, "failed": result.failed}


@shared_task(name="orderflow.purge_messaging", ignore_result=True)
def purge_messaging(context: str) -> dict[str, int]:
    from orderflow.messaging.inbox import purge_inbox

    now = timezone.now()
    outbox = relay.purge_published(context=context, older_than=now - settings.OUTBOX_RETENTION)
    inbox = purge_inbox(context=context, older_than=now - settings.INBOX_RETENTION)
    if outbox or inbox:
        log.info("purged %s: %d outbox row(s), %d inbox row(s)", context, outbox, inbox)
    return {"outbox": outbox, "inbox": inbox}

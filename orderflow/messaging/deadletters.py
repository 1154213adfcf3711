"""Dead letters: keep what a consumer gave up on, and replay it on request."""

from __future__ import annotations

import base64
from collections.abc import Iterable

from confluent_kafka import Producer
from django.apps import apps
from django.db import transaction
from django.utils import timezone

from orderflow.messaging.kafka import retry_topic
from orderflow.messaging.retry import ATTEMPT, NOT_BEFORE, ORIGIN, Delivery, now_ms


def dead_letter_model(context: str):
    return apps.get_model(context, "DeadLetter")


def encode_headers(headers: list[tuple[str, bytes]]) -> list[list[str]]:
    return [[k, base64.b64encode(v or b"").decode()] for k, v in headers]


def decode_headers(headers: list[list[str]]) -> list[tuple[str, bytes]]:
    return [(k, base64.b64decode(v)) for k, v in headers]


def record(*, context: str, consumer: str, delivery: Delivery, error: BaseException, attempts: int) -> None:
    """Store (or refresh, if dead-lettered again after a replay) the dead letter."""
    topic, partition, offset = delivery.origin_coordinates
    attrs = {k: (v or b"").decode("utf-8", "replace") for k, v in delivery.headers}
    with transaction.atomic(using=context):
        dead_letter_model(context).objects.using(context).update_or_create(
            consumer=consumer,
            original_topic=topic,
            original_partition=partition,
            original_offset=offset,
            defaults={
                "event_id": attrs.get("ce_id", "")[:100],
                "event_type": attrs.get("ce_type", "")[:200],
                "key": delivery.message.key(),
                "value": delivery.message.value(),
                "headers": encode_headers(delivery.headers),
                "attempts": attempts,
                "error_class": type(error).__name__,
                "error_message": str(error)[:5000],
                "dead_lettered_at": timezone.now(),
            },
        )


def replay(*, context: str, ids: Iterable[int] | None, by: str, producer: Producer) -> int:
    """Send dead letters back to the context's consumer (through its retry topic, so no other
    context sees them again), unchanged; the inbox makes a second replay a no-op."""
    letters = dead_letter_model(context).objects.using(context).all()
    if ids is not None:
        letters = letters.filter(id__in=list(ids))
    count = 0
    for letter in letters.order_by("original_topic", "original_partition", "original_offset"):
        origin = f"{letter.original_topic}:{letter.original_partition}:{letter.original_offset}"
        headers = [
            *decode_headers(letter.headers),
            (ORIGIN, origin.encode()),
            (ATTEMPT, b"0"),
            (NOT_BEFORE, str(now_ms()).encode()),
        ]
        errors: list = []
        producer.produce(
            retry_topic(context),
            key=letter.key and bytes(letter.key),
            value=letter.value and bytes(letter.value),
            headers=headers,
            on_delivery=lambda err, _m, errors=errors: err and errors.append(err),
        )
        if producer.flush(30) or errors:
            raise RuntimeError(f"could not replay dead letter {letter.pk}: {errors or 'not acknowledged'}")
        letter.replayed_at, letter.replayed_by = timezone.now(), by[:150]
        letter.replay_count += 1
        letter.save(using=context, update_fields=["replayed_at", "replayed_by", "replay_count"])
        count += 1
    return count

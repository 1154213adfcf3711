"""`python manage.py create_topics`: create every event stream's topic and each context's DLQ.

Idempotent: existing topics are left as they are.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from contracts import registry
from orderflow.contexts_registry import ALL_CONTEXTS
from orderflow.messaging.kafka import base_config, dlq_topic, retry_topic, topic_name


def all_topics() -> list[str]:
    streams = {topic_name(t.stream) for t in registry.all()}
    return sorted(streams | {dlq_topic(c) for c in ALL_CONTEXTS} | {retry_topic(c) for c in ALL_CONTEXTS})


def create_topics(*, timeout: float = 30.0) -> list[str]:
    admin = AdminClient(base_config())
    wanted = all_topics()
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                num_partitions=settings.KAFKA_TOPIC_PARTITIONS,
                replication_factor=settings.KAFKA_TOPIC_REPLICATION_FACTOR,
            )
            for t in missing
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result()
            created.append(topic)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


class Command(BaseCommand):
    help = "Create the Kafka topics of every event stream and dead-letter queue (idempotent)."

    def handle(self, *args, **options):
        try:
            created = create_topics()
        except KafkaException as exc:
            raise CommandError(f"could not create topics on {settings.KAFKA_BOOTSTRAP_SERVERS}: {exc}") from exc
        self.stdout.write(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else ""))

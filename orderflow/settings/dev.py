"""The embedded dev stack (`make run`): debug on, demo data allowed, fast broker timeouts."""

from .base import *  # noqa: F403
from .base import env, per_context_ms

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me-0123456789abcdef")
SIMPLE_JWT["SIGNING_KEY"] = env("JWT_SIGNING_KEY", default=SECRET_KEY)  # noqa: F405
# Tansu joins consumer groups slowly with librdkafka's defaults.
KAFKA_CONSUMER_SESSION_TIMEOUT_MS = env.int("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", default=6000)
KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS = env.int("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", default=500)
# Tansu does not answer a fetch early when data arrives: a long fetch wait is pure latency per hop
# (measured: ~250 ms at 500, ~7 ms at 10).
KAFKA_CONSUMER_FETCH_WAIT_MAX_MS = env.int("KAFKA_CONSUMER_FETCH_WAIT_MAX_MS", default=10)
# Except notifications, which no saga step waits for: Tansu lists every record batch stored in a
# partition on each fetch that finds new data there, so each consumer of a busy topic costs it
# work that grows with the topic (docs/benchmarks.md, seventh round). At 100 ms the notifications
# consumer fetches a tenth as often, and takes its events ten times fewer, larger batches.
KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT = per_context_ms(
    "KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT",
    env.dict("KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT", default={"notifications": "100"}),
)
# One partition per topic: the embedded stack runs one consumer per context, so more partitions
# buy no parallelism, and Tansu's cost is per partition fetched — every consumer fetches every
# 10 ms (above). Measured idle, four consumers: Tansu 0.67 cores with 6 partitions, 0.25 with 1;
# in the saga benchmark 0.63 → 0.30 cores of the machine's two. Production keeps base's 6.
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=1)
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
SEED_DEMO_ALLOWED = True
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True

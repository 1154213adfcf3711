"""pytest: real PostgreSQL/Redis/Kafka-protocol broker (started by `python -m orderflow.stack test`),
fast password hashing, in-memory email, short broker timeouts."""

from .base import env
from .dev import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
KAFKA_CONSUMER_SESSION_TIMEOUT_MS = env.int("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", default=6000)
KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS = env.int("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", default=500)
for _db in DATABASES.values():  # noqa: F405
    _db["CONN_MAX_AGE"] = 0
# Retries through the retry topic quickly, so tests of the failure policy stay short.
CONSUMER_RETRY_DELAYS = [float(d) for d in env.list("CONSUMER_RETRY_DELAYS", default=["0.2", "0.4", "0.8"])]

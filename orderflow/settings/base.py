"""Settings shared by every environment. Values come from the environment (django-environ).

Split: base (this), dev (the embedded stack), test (pytest), production (containers).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ

from orderflow.contexts_registry import context_queue, parse_hosted, per_context_ms

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

# --- Which bounded contexts this process hosts -------------------------------------------------
# The modular monolith hosts all six; a service hosts one (or a few). Only hosted contexts are
# installed, routed, migrated, consumed and scheduled here.
ORDERFLOW_CONTEXTS: tuple[str, ...] = parse_hosted(env("ORDERFLOW_CONTEXTS", default="all"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "orderflow.messaging",
    *[f"contexts.{name}" for name in ORDERFLOW_CONTEXTS],
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Gives every request a trace context so the events it causes carry traceparent/correlation.
    "orderflow.tracing.TraceMiddleware",
]

ROOT_URLCONF = "orderflow.urls"
WSGI_APPLICATION = "orderflow.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Databases: `default` plus one alias per hosted context -------------------------------------
# `default` holds Django's own tables (admin users, sessions, content types). Each context's
# tables, including its outbox and inbox, live in the database of the same name (see
# orderflow.routers). <CONTEXT>_DATABASE_URL names it; without one, the context gets a database
# named `<default name>_<context>` on the default server.
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/orderflow")}


def _context_database(name: str) -> dict:
    key = f"{name.upper()}_DATABASE_URL"
    if key in env.ENVIRON:
        return env.db(key)
    derived = dict(DATABASES["default"])
    derived["NAME"] = f"{DATABASES['default']['NAME']}_{name}"
    return derived


for _name in ORDERFLOW_CONTEXTS:
    DATABASES[_name] = _context_database(_name)
for _db in DATABASES.values():
    # Short-lived web requests reuse connections; health checks catch dead ones before use.
    _db.setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    _db["CONN_HEALTH_CHECKS"] = True
    # Server-side prepared statements for the hot statements that ask for them (PreparedCursor in
    # orderflow/messaging/bulk.py). Django turns psycopg's off (prepare_threshold=None) for the sake
    # of transaction-pooling PgBouncers, which silently made `prepare=True` a no-op: every batch
    # statement was parsed and planned again (decision 51). Django's own cursor binds parameters
    # client-side and never prepares, so ORM queries are unaffected. DB_PREPARED_STATEMENTS=false
    # for a pooler that cannot keep prepared statements (PgBouncer < 1.21 in transaction mode).
    _db.setdefault("OPTIONS", {}).setdefault(
        "prepare_threshold", 5 if env.bool("DB_PREPARED_STATEMENTS", default=True) else None
    )
    _db.setdefault("TEST", {})
    _db["TEST"].setdefault("NAME", f"test_{_db['NAME']}")

DATABASE_ROUTERS = ["orderflow.routers.ContextRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, cache, throttling -----------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

# --- Kafka ----------------------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env("KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:9092")
# Topic names are `<namespace>.<context>.<aggregate>`; tests give each run its own namespace.
KAFKA_TOPIC_NAMESPACE = env("KAFKA_TOPIC_NAMESPACE", default="orderflow")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=6)
KAFKA_TOPIC_REPLICATION_FACTOR = env.int("KAFKA_TOPIC_REPLICATION_FACTOR", default=1)
# librdkafka's defaults (45 s session) make group joins slow; environments may tighten these.
KAFKA_CONSUMER_SESSION_TIMEOUT_MS = env.int("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", default=45000)
KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS = env.int("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", default=3000)
# How long a fetch may wait on the broker for new data. Kafka answers as soon as data arrives, so
# the default costs no latency there; the embedded Tansu broker waits it out (see dev settings).
KAFKA_CONSUMER_FETCH_WAIT_MAX_MS = env.int("KAFKA_CONSUMER_FETCH_WAIT_MAX_MS", default=500)
# Per-context exceptions to it, e.g. KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT=notifications=100,orders=20.
KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT = per_context_ms(
    "KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT", env.dict("KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT", default={})
)
# Extra librdkafka options, e.g. security settings in production: KAFKA_EXTRA_CONFIG=k=v,k=v
KAFKA_EXTRA_CONFIG = env.dict("KAFKA_EXTRA_CONFIG", default={})
# How long the producer keeps trying to deliver before the relay parks the event.
KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS = env.int("KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS", default=30000)

# --- Outbox relay and consumers --------------------------------------------------------------------
# Rows per relay transaction, claimed in chunks of 1,000 that overlap with producing (relay.py):
# a bigger batch leaves less of its time un-overlapped (the first chunk, the flush, the commit).
OUTBOX_RELAY_BATCH_SIZE = env.int("OUTBOX_RELAY_BATCH_SIZE", default=10000)
# One relay run drains for at most this long, so a busy context cannot starve the worker.
OUTBOX_RELAY_MAX_SECONDS = env.float("OUTBOX_RELAY_MAX_SECONDS", default=5.0)
# Consumers relay their own context's outbox right after each commit (outbox.inline_relay), for
# at most this long per commit; a worker takes over anything left.
CONSUMER_RELAY_INLINE = env.bool("CONSUMER_RELAY_INLINE", default=True)
# A context's relay thread (its consumer's, or `relay_outbox --listen`) LISTENs for the outbox's
# commit notifications (messaging.notify), so a commit anywhere wakes it and other processes kick
# nothing (decision 43); beat's one-second run covers a stopped listener. False: each commit kicks
# its own process's relay thread, or queues a Celery run.
OUTBOX_RELAY_LISTEN = env.bool("OUTBOX_RELAY_LISTEN", default=True)
# Without OUTBOX_RELAY_LISTEN: web workers relay what their requests commit in a relay thread per
# context (outbox.relay_in_threads) rather than queueing a Celery run per commit.
WEB_RELAY_INLINE = env.bool("WEB_RELAY_INLINE", default=True)
OUTBOX_RELAY_INLINE_MAX_SECONDS = env.float("OUTBOX_RELAY_INLINE_MAX_SECONDS", default=0.5)
# Published rows are kept this long: a fresh broker (or a new cluster after a disaster) can be
# refilled from them. The inbox must remember event ids at least as long.
OUTBOX_RETENTION = timedelta(hours=env.float("OUTBOX_RETENTION_HOURS", default=24 * 7))
INBOX_RETENTION = timedelta(hours=env.float("INBOX_RETENTION_HOURS", default=24 * 14))

# Consumers: a record that fails (not an outage) is retried through the context's retry topic
# after each of these delays (seconds), then dead-lettered.
CONSUMER_RETRY_DELAYS = [float(d) for d in env.list("CONSUMER_RETRY_DELAYS", default=["1", "10", "60"])]

# --- Celery ------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = env(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(BASE_DIR / "var" / "celerybeat-schedule")
)
# One queue per hosted context; a worker started without -Q consumes exactly these.
CELERY_TASK_QUEUES = {
    context_queue(c): {"exchange": context_queue(c), "routing_key": context_queue(c)} for c in ORDERFLOW_CONTEXTS
}
CELERY_TASK_DEFAULT_QUEUE = context_queue(ORDERFLOW_CONTEXTS[0])
# A context's own tasks (contexts/<name>/tasks.py) run on that context's queue.
CELERY_TASK_ROUTES = {f"contexts.{c}.*": {"queue": context_queue(c)} for c in ORDERFLOW_CONTEXTS}

# --- Business settings ---------------------------------------------------------------------------------
# Orders: a PENDING order with no saga outcome after this long is cancelled (reason `timeout`).
ORDERS_PENDING_DEADLINE = timedelta(seconds=env.float("ORDERS_PENDING_DEADLINE_SECONDS", default=300))
ORDERS_DEADLINE_CHECK_SECONDS = env.float("ORDERS_DEADLINE_CHECK_SECONDS", default=5)
# Payments: the gateway adapter (a dotted path to a class with the PaymentGateway protocol) and the
# fake gateway's single-payment limit: any larger total is declined.
PAYMENTS_GATEWAY = env("PAYMENTS_GATEWAY", default="contexts.payments.gateway.FakeGateway")
PAYMENTS_SINGLE_PAYMENT_LIMIT = env.str("PAYMENTS_SINGLE_PAYMENT_LIMIT", default="5000.00")
# Notifications: sender address; the backend is console (dev), locmem (tests) or SMTP (production).
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="OrderFlow <orders@orderflow.local>")

# --- API -----------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Stateless: any context verifies the customers context's tokens without its database.
        "orderflow.auth.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "orderflow.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "SIGNING_KEY": env("JWT_SIGNING_KEY", default=SECRET_KEY) or SECRET_KEY,
    "ALGORITHM": "HS256",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "OrderFlow API",
    "DESCRIPTION": "Event-driven order management: catalog, orders, stock, payments, notifications.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orderflow.openapi.add_problem_responses",
    ],
}

# --- Static files, i18n ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: one line per record, to stderr, so the dev stack can prefix it per process -----------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

"""The commands of every OrderFlow process kind, in one place.

The dev stack runs exactly these, and docker-compose.yml / the k8s manifests must use the same
(a test keeps them equal), so what runs locally is what runs in production.
"""

from __future__ import annotations

from orderflow.contexts_registry import ALL_CONTEXTS

WEB = ["gunicorn", "orderflow.wsgi:application", "--config", "deploy/gunicorn.conf.py"]
WORKER = ["celery", "--app", "orderflow", "worker", "--loglevel", "INFO"]
BEAT = ["celery", "--app", "orderflow", "beat", "--loglevel", "INFO"]
# One-shot steps before the long-running processes start.
MIGRATE = ["python", "manage.py", "migrate_contexts"]
CREATE_TOPICS = ["python", "manage.py", "create_topics"]
SETTLE = ["python", "manage.py", "await_settled", "--timeout", "60"]


def consumer(context: str) -> list[str]:
    return ["python", "manage.py", "consume", *_known(context)]


def relay(*contexts: str) -> list[str]:
    """A process of listening relays only (each consumer process already runs its context's)."""
    return ["python", "manage.py", "relay_outbox", "--listen", *_known(*contexts)]


def _known(*contexts: str) -> tuple[str, ...]:
    unknown = [c for c in contexts if c not in ALL_CONTEXTS]
    if unknown:
        raise ValueError(f"unknown context(s) {', '.join(map(repr, unknown))}")
    return contexts

"""Liveness and readiness. Ready means: every database this process uses, Redis and Kafka answer."""

from __future__ import annotations

import time

import redis
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connections
from django.http import JsonResponse

from orderflow.messaging.kafka import base_config

CHECK_TIMEOUT_S = 2.0


def _database(alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()


_admin: AdminClient | None = None


def _kafka() -> None:
    global _admin
    if _admin is None:
        _admin = AdminClient({**base_config(), "socket.timeout.ms": int(CHECK_TIMEOUT_S * 1000)})
    _admin.list_topics(timeout=CHECK_TIMEOUT_S)


def live(request):
    return JsonResponse({"status": "ok"})


def ready(request):
    checks = {f"database:{alias}": (lambda a=alias: _database(a)) for alias in settings.DATABASES}
    checks["redis"] = _redis
    checks["kafka"] = _kafka
    results: dict[str, dict] = {}
    for name, check in checks.items():
        started = time.monotonic()
        try:
            check()
            results[name] = {"status": "ok", "ms": round((time.monotonic() - started) * 1000, 1)}
        except Exception as exc:  # any failure makes this process not ready; say which and why
            results[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    failed = sorted(name for name, r in results.items() if r["status"] != "ok")
    body = {"status": "ok" if not failed else "unavailable", "failed": failed, "checks": results}
    return JsonResponse(body, status=200 if not failed else 503)

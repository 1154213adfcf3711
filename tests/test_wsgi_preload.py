"""gunicorn preloads `orderflow.wsgi` in its master and forks the workers (decision 23): what a
worker would otherwise import on its first requests must be imported there, and nothing that
holds a connection may be created before the fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.processes import ROOT

PROBE = """
import json, sys
before = set(sys.modules)
import orderflow.wsgi
from django.db import connections
from orderflow.messaging import kafka, tasks
print(json.dumps({
    "loaded": sorted(set(sys.modules) - before),
    "open_connections": [c.alias for c in connections.all(initialized_only=True) if c.connection is not None],
    "producer": kafka._producer is not None,
    "redis": tasks._redis is not None,
}))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    """What importing orderflow.wsgi does in a fresh interpreter (as in gunicorn's master)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "orderflow.settings.dev"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_master_imports_what_a_worker_needs_for_its_first_order(probe):
    loaded = set(probe["loaded"])
    # The relay kick of a request's commit, and Celery behind it; the JWT backend; the middleware's
    # session and message stores.
    for module in (
        "orderflow.messaging.tasks",
        "orderflow.messaging.relay",
        "celery",
        "rest_framework_simplejwt.state",
        "django.contrib.sessions.backends.db",
        "django.contrib.messages.storage.fallback",
    ):
        assert module in loaded, module


def test_preloading_opens_no_connection(probe):
    assert probe["open_connections"] == []
    assert probe["producer"] is False
    assert probe["redis"] is False

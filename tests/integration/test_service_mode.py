"""ORDERFLOW_CONTEXTS: one process hosts only the contexts it names (service mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.fixtures.processes import ROOT, manage

PROBE = r"""
import json, django
django.setup()
from django.conf import settings
from django.urls import NoReverseMatch, reverse
from orderflow.celery import app
app.loader.import_default_modules()
app.finalize()
def resolves(name, *args):
    try:
        reverse(name, args=args)
        return True
    except NoReverseMatch:
        return False
print(json.dumps({
    "apps": [a for a in settings.INSTALLED_APPS if a.startswith("contexts.")],
    "databases": sorted(settings.DATABASES),
    "stock_url": resolves("stock-detail", "SKU-1"),
    "orders_url": resolves("order-list"),
    "queues": sorted(settings.CELERY_TASK_QUEUES),
    "beat": sorted(app.conf.beat_schedule),
}))
"""


def probe(contexts: str) -> dict:
    env = {**os.environ, "ORDERFLOW_CONTEXTS": contexts, "DJANGO_SETTINGS_MODULE": "orderflow.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_service_hosts_only_its_context():
    inventory = probe("inventory")
    assert inventory["apps"] == ["contexts.inventory"]
    assert inventory["databases"] == ["default", "inventory"]
    assert inventory["stock_url"] and not inventory["orders_url"]
    assert inventory["queues"] == ["orderflow.inventory"]
    assert inventory["beat"] == ["purge inventory outbox and inbox", "relay inventory outbox"]


def test_the_monolith_hosts_all_six_and_schedules_context_tasks():
    everything = probe("all")
    assert len(everything["apps"]) == 6 and len(everything["databases"]) == 7
    assert "orders: contexts.orders.tasks.cancel_overdue_orders" in everything["beat"]


def test_consuming_a_context_this_process_does_not_host_is_a_clear_error():
    env = {**os.environ, "ORDERFLOW_CONTEXTS": "inventory", "DJANGO_SETTINGS_MODULE": "orderflow.settings.test"}
    result = manage("consume", "orders", env=env, check=False, timeout=60)
    assert result.returncode == 1
    assert "not hosted by this process" in result.stderr and "Traceback" not in result.stderr
    unknown = {**env, "ORDERFLOW_CONTEXTS": "inventory,shipping"}
    result = manage("check", env=unknown, check=False, timeout=60)
    assert result.returncode != 0 and "unknown context(s) shipping" in result.stderr

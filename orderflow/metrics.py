"""Prometheus metrics: backbone counters and a gauge of each hosted outbox's backlog."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

EVENTS_RELAYED = Counter("orderflow_events_relayed_total", "Outbox events published to Kafka", ["context"])
EVENTS_CONSUMED = Counter("orderflow_events_consumed_total", "Events applied by consumers", ["context"])
OUTBOX_BACKLOG = Gauge("orderflow_outbox_backlog", "Unpublished outbox events", ["context"])


def view(request):
    from orderflow.messaging.status import backlog as outbox_backlog

    for context in settings.ORDERFLOW_CONTEXTS:
        try:
            backlog = outbox_backlog(context)
        except Exception:  # a down database must not break the scrape of everything else
            continue
        OUTBOX_BACKLOG.labels(context).set(backlog)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)

"""Retention: the hourly purge removes old published outbox rows and old inbox rows only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from contexts.catalog import services as catalog
from contexts.catalog.models import InboxEvent, OutboxEvent
from orderflow.domain import Money
from orderflow.messaging.tasks import purge_messaging

pytestmark = pytest.mark.django_db(databases="__all__")


def test_purge_keeps_unpublished_outbox_rows_and_recent_inbox_rows(settings):
    settings.OUTBOX_RETENTION = timedelta(days=7)
    settings.INBOX_RETENTION = timedelta(days=14)
    now = timezone.now()
    for n in range(3):
        catalog.product_add(sku=f"SKU-RET{n}", name="r", price=Money.of("1", "USD"))
    outbox = OutboxEvent.objects.using("catalog")
    outbox.filter(aggregateid="SKU-RET0").update(published_at=now - timedelta(days=8))  # old, published
    outbox.filter(aggregateid="SKU-RET1").update(published_at=now - timedelta(days=1))  # recent
    # SKU-RET2 stays unpublished, however old it is.
    outbox.filter(aggregateid="SKU-RET2").update(occurred_at=now - timedelta(days=90))
    inbox = InboxEvent.objects.using("catalog")
    for event_id, age in [("old", 15), ("young", 13)]:
        row = inbox.create(consumer="c", event_id=event_id, type="t", topic="x", partition=0, offset=0)
        inbox.filter(pk=row.pk).update(processed_at=now - timedelta(days=age))

    assert purge_messaging("catalog") == {"outbox": 1, "inbox": 1}
    assert sorted(outbox.values_list("aggregateid", flat=True)) == ["SKU-RET1", "SKU-RET2"]
    assert list(inbox.values_list("event_id", flat=True)) == ["young"]

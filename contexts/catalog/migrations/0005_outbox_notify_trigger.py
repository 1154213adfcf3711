"""The outbox announces its commits to the context's listening relay (orderflow.messaging.notify)."""

from django.db import migrations

from orderflow.messaging.notify import trigger_operation


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0004_outbox_published_partial_brin"),
    ]

    operations = [trigger_operation("catalog_outboxevent")]

"""A session that does not listen can turn its commits' notifications off (orderflow.messaging.notify)."""

from django.db import migrations

from orderflow.messaging.notify import silenceable_operation


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_outbox_notify_trigger"),
    ]

    operations = [silenceable_operation()]

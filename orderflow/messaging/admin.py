"""Admin pages for a context's outbox and inbox (registered by each context's admin module)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.html import format_html


class OutboxStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("pending", "pending"),
            ("parked", "parked (waiting for next attempt)"),
            ("failed", "failing (pending with errors)"),
            ("published", "published"),
        ]

    def queryset(self, request, queryset: QuerySet):
        if self.value() == "pending":
            return queryset.filter(published_at__isnull=True)
        if self.value() == "parked":
            return queryset.filter(published_at__isnull=True, next_attempt_at__gt=timezone.now())
        if self.value() == "failed":
            return queryset.filter(published_at__isnull=True, attempts__gt=0)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


class OutboxAdmin(admin.ModelAdmin):
    list_display = [
        "position",
        "type",
        "aggregateid",
        "occurred_at",
        "published_at",
        "attempts",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = [OutboxStatusFilter, "type"]
    search_fields = ["aggregateid", "event_id", "type"]
    readonly_fields = [f.name for f in ()]  # filled in __init__
    actions = ["retry_now"]
    date_hierarchy = "occurred_at"

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        self.readonly_fields = [f.name for f in model._meta.fields]

    def has_add_permission(self, request):
        return False  # events are facts written by services, never by hand

    @admin.action(description="Relay now (retry pending rows)")
    def retry_now(self, request, queryset):
        from orderflow.messaging.tasks import kick

        context = self.model._meta.app_label
        pending = queryset.filter(published_at__isnull=True).update(attempts=0, last_error="", next_attempt_at=None)
        kick(context)
        self.message_user(
            request, f"{pending} pending event(s) reset; the {context} relay was kicked.", messages.SUCCESS
        )


class InboxAdmin(admin.ModelAdmin):
    list_display = ["processed_at", "consumer", "type", "event_id", "topic", "partition", "offset"]
    list_filter = ["consumer", "type"]
    search_fields = ["event_id", "type"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeadLetterAdmin(admin.ModelAdmin):
    list_display = [
        "dead_lettered_at",
        "event_type",
        "event_id",
        "error_class",
        "attempts",
        "original",
        "replayed_at",
        "replayed_by",
        "replay_count",
    ]
    list_filter = ["error_class", "event_type", ("replayed_at", admin.EmptyFieldListFilter)]
    search_fields = ["event_id", "event_type", "error_message"]
    actions = ["replay"]
    readonly_fields = [
        "consumer",
        "event_id",
        "event_type",
        "original",
        "attempts",
        "error_class",
        "error_message",
        "dead_lettered_at",
        "replayed_at",
        "replayed_by",
        "replay_count",
        "headers_shown",
        "body",
    ]
    exclude = ["key", "value", "headers", "original_topic", "original_partition", "original_offset"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="original record")
    def original(self, letter):
        return f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}"

    @admin.display(description="headers")
    def headers_shown(self, letter):
        from orderflow.messaging.deadletters import decode_headers

        return format_html(
            "<pre>{}</pre>",
            "\n".join(f"{k}: {v.decode('utf-8', 'replace')}" for k, v in decode_headers(letter.headers)),
        )

    @admin.display(description="body")
    def body(self, letter):
        return format_html("<pre>{}</pre>", bytes(letter.value or b"").decode("utf-8", "replace"))

    @admin.action(description="Replay to the consumer (recorded; the inbox keeps it to one effect)")
    def replay(self, request, queryset):
        from confluent_kafka import Producer

        from orderflow.messaging.deadletters import replay
        from orderflow.messaging.kafka import producer_config

        context = self.model._meta.app_label
        count = replay(
            context=context,
            ids=list(queryset.values_list("id", flat=True)),
            by=f"admin:{request.user.get_username()}",
            producer=Producer(producer_config()),
        )
        self.message_user(request, f"Replayed {count} dead letter(s) to the {context} consumer.", messages.SUCCESS)


class ParkedKeyAdmin(admin.ModelAdmin):
    list_display = ["consumer", "key", "waiting", "head_not_before", "updated_at"]
    search_fields = ["key"]
    readonly_fields = ["consumer", "key", "queue", "head_not_before", "updated_at"]

    @admin.display(description="records waiting")
    def waiting(self, parked):
        return len(parked.queue)

    def has_add_permission(self, request):
        return False


def register_messaging_admin(outbox_model, inbox_model) -> None:
    """The context's outbox, inbox, dead letters and parked keys (found by the context's label)."""
    from django.apps import apps

    admin.site.register(outbox_model, OutboxAdmin)
    admin.site.register(inbox_model, InboxAdmin)
    label = outbox_model._meta.app_label
    admin.site.register(apps.get_model(label, "DeadLetter"), DeadLetterAdmin)
    admin.site.register(apps.get_model(label, "ParkedKey"), ParkedKeyAdmin)

"""Admin pages for a context's outbox and inbox (registered by each context's admin module)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet


class OutboxStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("pending", "pending"), ("failed", "failing (pending with errors)"), ("published", "published")]

    def queryset(self, request, queryset: QuerySet):
        if self.value() == "pending":
            return queryset.filter(published_at__isnull=True)
        if self.value() == "failed":
            return queryset.filter(published_at__isnull=True, attempts__gt=0)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


class OutboxAdmin(admin.ModelAdmin):
    list_display = ["position", "type", "aggregateid", "occurred_at", "published_at", "attempts", "last_error"]
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
        pending = queryset.filter(published_at__isnull=True).update(attempts=0, last_error="")
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


def register_messaging_admin(outbox_model, inbox_model) -> None:
    admin.site.register(outbox_model, OutboxAdmin)
    admin.site.register(inbox_model, InboxAdmin)

from django.contrib import admin

from contexts.notifications.models import Contact, InboxEvent, Notification, OutboxEvent
from orderflow.messaging.admin import register_messaging_admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Replicas and sent mail are facts from events: looked at here, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DeliveryFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [
            ("sent", "sent"),
            ("unsent", "addressed, not sent yet (retried)"),
            ("unaddressed", "unaddressed (contact unknown or deactivated)"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "sent":
            return queryset.filter(sent_at__isnull=False)
        if self.value() == "unsent":
            return queryset.filter(sent_at__isnull=True, to_email__isnull=False)
        if self.value() == "unaddressed":
            return queryset.filter(sent_at__isnull=True, to_email__isnull=True)
        return queryset


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "order_id", "customer_id", "to_email", "sent_at", "attempts"]
    list_filter = ["kind", DeliveryFilter]
    search_fields = ["order_id", "customer_id", "to_email"]
    date_hierarchy = "created_at"


@admin.register(Contact)
class ContactAdmin(ReadOnlyAdmin):
    list_display = ["customer_id", "email", "name", "active", "updated_at"]
    list_filter = ["active"]
    search_fields = ["customer_id", "email", "name"]


register_messaging_admin(OutboxEvent, InboxEvent)

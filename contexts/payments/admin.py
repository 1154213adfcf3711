from django.contrib import admin

from contexts.payments.models import InboxEvent, OutboxEvent, Payment
from orderflow.messaging.admin import register_messaging_admin


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["id", "order_id", "amount", "currency", "status", "decline_reason", "created_at", "updated_at"]
    list_filter = ["status", "decline_reason"]
    search_fields = ["order_id", "id"]
    date_hierarchy = "created_at"

    # Payments change only through the saga's events (and the gateway); the admin just shows them.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


register_messaging_admin(OutboxEvent, InboxEvent)

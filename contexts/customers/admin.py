from django.contrib import admin

from contexts.customers import services
from contexts.customers.models import Account, InboxEvent, OutboxEvent
from orderflow.messaging.admin import register_messaging_admin


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["email", "name", "active", "is_staff", "created_at"]
    list_filter = ["active", "is_staff"]
    search_fields = ["email", "name", "id"]
    exclude = ["password"]
    readonly_fields = ["id", "email", "name", "active", "created_at", "updated_at"]
    actions = ["deactivate"]

    @admin.action(description="Deactivate (publishes CustomerDeactivated)")
    def deactivate(self, request, queryset):
        for account in queryset.filter(active=True):
            services.customer_deactivate(customer_id=account.id)
        self.message_user(request, "Deactivated; other contexts follow through CustomerDeactivated.")


register_messaging_admin(OutboxEvent, InboxEvent)

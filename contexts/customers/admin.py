from django.contrib import admin

from contexts.customers.models import Account, InboxEvent, OutboxEvent
from orderflow.messaging.admin import register_messaging_admin


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["email", "name", "active", "is_staff", "created_at"]
    list_filter = ["active", "is_staff"]
    search_fields = ["email", "name", "id"]
    exclude = ["password"]
    readonly_fields = ["id", "created_at", "updated_at"]


register_messaging_admin(OutboxEvent, InboxEvent)

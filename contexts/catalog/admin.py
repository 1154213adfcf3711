from django.contrib import admin

from contexts.catalog.models import InboxEvent, OutboxEvent, Product
from orderflow.messaging.admin import register_messaging_admin


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    # Changes go through the API so that they publish events; the admin only shows.
    list_display = ["sku", "name", "price_amount", "price_currency", "active", "updated_at"]
    list_filter = ["active", "price_currency"]
    search_fields = ["sku", "name"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


register_messaging_admin(OutboxEvent, InboxEvent)

from django.contrib import admin

from contexts.inventory.models import InboxEvent, OutboxEvent, Reservation, StockAdjustment, StockItem
from orderflow.messaging.admin import register_messaging_admin


@admin.register(StockItem)
class StockItemAdmin(admin.ModelAdmin):
    list_display = ["sku", "on_hand", "reserved", "updated_at"]
    search_fields = ["sku"]
    readonly_fields = ["sku", "on_hand", "reserved", "updated_at"]  # adjust through the API (audited)


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["order_id", "status", "created_at", "updated_at"]
    list_filter = ["status"]
    search_fields = ["order_id"]
    readonly_fields = ["order_id", "status", "lines", "created_at", "updated_at"]


@admin.register(StockAdjustment)
class StockAdjustmentAdmin(admin.ModelAdmin):
    list_display = ["created_at", "sku", "delta", "reason", "on_hand_after", "adjusted_by"]
    search_fields = ["sku", "reason"]


register_messaging_admin(OutboxEvent, InboxEvent)

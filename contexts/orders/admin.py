from django.contrib import admin
from django.utils.html import format_html_join

from contexts.orders.models import (
    CustomerStatus,
    InboxEvent,
    Order,
    OrderLine,
    OutboxEvent,
    ProductPrice,
    TimelineEntry,
)
from orderflow.messaging.admin import register_messaging_admin


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ["position", "sku", "quantity", "unit_price_amount"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "customer_id",
        "status",
        "stock_status",
        "payment_status",
        "total_amount",
        "currency",
        "created_at",
    ]
    list_filter = ["status", "stock_status", "payment_status"]
    search_fields = ["id", "customer_id"]
    search_help_text = "order id, customer id or customer email"
    inlines = [OrderLineInline]
    readonly_fields = [
        "id",
        "customer_id",
        "status",
        "stock_status",
        "payment_status",
        "cancellation_reason",
        "total_amount",
        "currency",
        "created_at",
        "updated_at",
        "timeline",
    ]

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if "@" in term:  # an email: orders of the customers the replica knows by that address
            customers = CustomerStatus.objects.using("orders").filter(email__iexact=term).values("customer_id")
            queryset |= self.model.objects.using("orders").filter(customer_id__in=customers)
        return queryset, may_have_duplicates

    @admin.display(description="timeline")
    def timeline(self, order):
        entries = TimelineEntry.objects.using("orders").filter(order_id=order.id).order_by("occurred_at", "id")
        return (
            format_html_join(
                "\n",
                "<div>{} · <b>{}</b> from {} · <code>{}</code></div>",
                ((e.occurred_at, e.type, e.source, e.data) for e in entries),
            )
            or "—"
        )


@admin.register(ProductPrice)
class ProductPriceAdmin(admin.ModelAdmin):
    list_display = ["sku", "price_amount", "price_currency", "active", "updated_at"]
    search_fields = ["sku"]


admin.site.register(CustomerStatus)
register_messaging_admin(OutboxEvent, InboxEvent)

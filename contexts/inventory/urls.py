from django.urls import path

from contexts.inventory import api

urlpatterns = [
    path("api/inventory/stock/<str:sku>/", api.StockDetailApi.as_view(), name="stock-detail"),
    path("api/inventory/stock/<str:sku>/adjust/", api.StockAdjustApi.as_view(), name="stock-adjust"),
]

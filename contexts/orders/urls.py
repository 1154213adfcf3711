from django.urls import path

from contexts.orders import api

urlpatterns = [
    path("api/orders/", api.OrderListApi.as_view(), name="order-list"),
    path("api/orders/<uuid:order_id>/", api.OrderDetailApi.as_view(), name="order-detail"),
    path("api/orders/<uuid:order_id>/cancel/", api.OrderCancelApi.as_view(), name="order-cancel"),
    path("api/orders/<uuid:order_id>/ship/", api.OrderShipApi.as_view(), name="order-ship"),
    path("api/orders/<uuid:order_id>/deliver/", api.OrderDeliverApi.as_view(), name="order-deliver"),
    path("api/orders/<uuid:order_id>/timeline/", api.OrderTimelineApi.as_view(), name="order-timeline"),
]

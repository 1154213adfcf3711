from django.urls import path

from contexts.payments import api

urlpatterns = [
    path("api/payments/", api.PaymentListApi.as_view(), name="payment-list"),
]

from django.urls import path

from contexts.customers import api

urlpatterns = [
    path("api/customers/", api.CustomerRegisterApi.as_view(), name="customer-register"),
    path("api/customers/me/", api.MeApi.as_view(), name="customer-me"),
    path("api/auth/token/", api.TokenObtainApi.as_view(), name="token-obtain"),
    path("api/auth/token/refresh/", api.TokenRefreshApi.as_view(), name="token-refresh"),
]

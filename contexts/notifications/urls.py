from django.urls import path

from contexts.notifications import api

urlpatterns = [
    path("api/notifications/", api.NotificationListApi.as_view(), name="notification-list"),
]

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "contexts.notifications"
    label = "notifications"
    verbose_name = "Notifications"

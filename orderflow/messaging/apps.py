from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "orderflow.messaging"
    label = "messaging"
    verbose_name = "Messaging backbone"

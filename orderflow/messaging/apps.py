from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "orderflow.messaging"
    label = "messaging"
    verbose_name = "Messaging backbone"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from orderflow.messaging.notify import silence_when_not_listening

        connection_created.connect(silence_when_not_listening, dispatch_uid="orderflow.outbox_notify")

from contexts.payments.models import InboxEvent, OutboxEvent
from orderflow.messaging.admin import register_messaging_admin

register_messaging_admin(OutboxEvent, InboxEvent)

from orderflow.messaging.models import InboxEventBase, OutboxEventBase, inbox_constraints, outbox_indexes


class OutboxEvent(OutboxEventBase):
    class Meta(OutboxEventBase.Meta):
        indexes = outbox_indexes("payments")


class InboxEvent(InboxEventBase):
    class Meta(InboxEventBase.Meta):
        constraints = inbox_constraints("payments")

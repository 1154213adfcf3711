"""Sending a run of notifications at once: one mail connection and one transaction for all of them,
each NotificationSent under its own cause's trace, and a failed send or an unreachable mail server
leaving exactly the notifications concerned unsent for the retry task."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import transaction

from contexts.notifications import services
from contexts.notifications.models import Notification, OutboxEvent
from orderflow import tracing

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

DB = "notifications"
SENT = "orderflow.notifications.NotificationSent.v1"
BACKEND = f"{__name__}.RecordingBackend"


class RecordingBackend(LocmemBackend):
    """Django's in-memory backend that counts the connections opened, refuses one address, and
    can be made unreachable."""

    opened = 0
    unreachable = False
    refused = "refused@example.com"

    def open(self):
        if RecordingBackend.unreachable:
            raise ConnectionRefusedError("mail server unreachable")
        RecordingBackend.opened += 1
        return True

    def send_messages(self, messages):
        for message in messages:
            if self.refused in message.to:
                raise ValueError(f"recipient refused: {self.refused}")
        return super().send_messages(messages)


@pytest.fixture
def backend(settings):
    settings.EMAIL_BACKEND = BACKEND
    RecordingBackend.opened, RecordingBackend.unreachable = 0, False
    mail.outbox = []
    return RecordingBackend


def unsent(to_email: str) -> Notification:
    return Notification.objects.using(DB).create(
        order_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        kind="order_confirmed",
        subject=f"Order for {to_email}",
        body="Hello",
        to_email=to_email,
    )


def sent_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.using(DB).filter(type=SENT).order_by("position"))


def test_a_run_goes_out_over_one_connection_each_event_under_its_cause_trace(backend):
    notifications = [unsent(f"n{i}@example.com") for i in range(3)]
    traces = [tracing.new_root() for _ in notifications]

    assert services.notifications_deliver(sends=[(n.id, t) for n, t in zip(notifications, traces, strict=True)]) == 3

    assert backend.opened == 1
    assert [m.to for m in mail.outbox] == [[n.to_email] for n in notifications]
    assert all(n.sent_at and n.attempts == 1 for n in Notification.objects.using(DB).all())
    events = sent_events()
    assert [e.payload["notification_id"] for e in events] == [str(n.id) for n in notifications]
    assert [e.headers["traceparent"].split("-")[1] for e in events] == [t.trace_id for t in traces]
    # Sent means sent: a second call finds nothing to do.
    assert services.notifications_deliver(sends=[(n.id, None) for n in notifications]) == 0
    assert len(mail.outbox) == 3


def test_a_refused_message_stays_unsent_and_the_others_are_sent(backend):
    first, refused, last = unsent("a@example.com"), unsent(backend.refused), unsent("c@example.com")

    assert services.notifications_deliver(sends=[(n.id, None) for n in (first, refused, last)]) == 2

    assert [m.to for m in mail.outbox] == [["a@example.com"], ["c@example.com"]]
    refused.refresh_from_db(using=DB)
    assert (refused.sent_at, refused.attempts) == (None, 1)
    assert refused.last_error.startswith("ValueError: recipient refused")
    assert [e.payload["notification_id"] for e in sent_events()] == [str(first.id), str(last.id)]


def test_an_unreachable_mail_server_leaves_all_unsent_with_the_attempt_counted(backend):
    backend.unreachable = True
    notifications = [unsent(f"n{i}@example.com") for i in range(2)]

    assert services.notifications_deliver(sends=[(n.id, None) for n in notifications]) == 0

    assert mail.outbox == [] and sent_events() == []
    for n in Notification.objects.using(DB).all():
        assert (n.sent_at, n.attempts) == (None, 1)
        assert n.last_error == "ConnectionRefusedError: mail server unreachable"
    # Back up: the retry path sends them.
    backend.unreachable = False
    assert services.notifications_deliver(sends=[(n.id, None) for n in notifications]) == 2
    assert [n.attempts for n in Notification.objects.using(DB).order_by("created_at")] == [2, 2]


def test_a_consumer_batch_is_sent_in_chunks_after_its_commit(backend, monkeypatch):
    monkeypatch.setattr(services, "DELIVER_CHUNK", 2)
    notifications = [unsent(f"n{i}@example.com") for i in range(5)]
    with transaction.atomic(using=DB):
        services._deliver_after_commit([(n.id, tracing.current()) for n in notifications])
        assert mail.outbox == []  # nothing goes out before the commit
    assert [m.to for m in mail.outbox] == [[n.to_email] for n in notifications]
    assert backend.opened == 3  # chunks of 2, 2 and 1
    assert len(sent_events()) == 5

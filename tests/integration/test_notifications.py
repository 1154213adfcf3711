"""Notifications on the real databases and broker: one email per (order, kind) whatever is
redelivered, order events that arrive before the customer's contact, email changes, the retry
task, the API, and the real consumer. Email goes through Django's in-memory test backend."""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connections, transaction

import contracts.customers as customers
import contracts.orders as orders
from contexts.notifications import services
from contexts.notifications.handlers import SUBSCRIPTIONS
from contexts.notifications.models import Contact, Notification, OutboxEvent
from contexts.notifications.tasks import deliver_due_notifications
from contracts import EventType
from orderflow.messaging.consumer import ContextConsumer, Event
from orderflow.messaging.envelope import Envelope
from orderflow.messaging.kafka import topic_name
from tests.fixtures.kafka import produce

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

DB = "notifications"
SENT = "orderflow.notifications.NotificationSent.v1"


def confirmed(order_id: uuid.UUID, customer_id: uuid.UUID) -> dict:
    return {
        "order_id": str(order_id),
        "customer_id": str(customer_id),
        "lines": [{"sku": "SKU-0001", "quantity": 2, "unit_price": {"amount": "9.50", "currency": "USD"}}],
        "total": {"amount": "19.00", "currency": "USD"},
    }


def order_ref(order_id: uuid.UUID, customer_id: uuid.UUID) -> dict:
    return {"order_id": str(order_id), "customer_id": str(customer_id)}


def registered(customer_id: uuid.UUID, email: str, name: str = "Ada") -> dict:
    return {"customer_id": str(customer_id), "email": email, "name": name}


def handle(event_type: EventType, data: dict) -> None:
    """Apply an event as the consumer does: the handler inside a transaction on our database,
    with a fresh event id each time (a duplicate publish, which the inbox cannot catch)."""
    event_type.validate(data)
    subject = data.get("order_id") or data["customer_id"]
    event = Event(str(uuid.uuid4()), event_type, f"/orderflow/{event_type.context}", subject, datetime.now(UTC), data)
    with transaction.atomic(using=DB):
        SUBSCRIPTIONS[event_type](event)


def sent_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.using(DB).filter(type=SENT))


def test_one_email_per_order_and_kind_even_when_the_event_is_handled_twice():
    customer_id, order_id = uuid.uuid4(), uuid.uuid4()
    handle(customers.CustomerRegistered, registered(customer_id, "ada@example.com"))

    handle(orders.OrderConfirmed, confirmed(order_id, customer_id))
    handle(orders.OrderConfirmed, confirmed(order_id, customer_id))

    [message] = mail.outbox
    notification = Notification.objects.using(DB).get()
    ref = str(order_id)[:8].upper()
    assert message.to == ["ada@example.com"]
    assert message.subject == notification.subject == f"Your order {ref} is confirmed"
    assert "Hello Ada," in message.body and "2 x SKU-0001 at 9.50 USD" in message.body
    assert "Total: 19.00 USD" in message.body
    assert message.extra_headers["Message-ID"] == f"<notification-{notification.id}@orderflow.local>"
    assert notification.sent_at is not None and notification.to_email == "ada@example.com"
    [event] = sent_events()
    assert event.aggregateid == str(notification.id)
    assert event.payload == {
        "notification_id": str(notification.id),
        "order_id": str(order_id),
        "customer_id": str(customer_id),
        "kind": "order_confirmed",
    }

    # Any later attempt to deliver it (the retry task, a second post-commit hook) is a no-op.
    assert services.notification_deliver(notification_id=notification.id) is False
    assert deliver_due_notifications() == 0
    assert len(mail.outbox) == 1 and len(sent_events()) == 1


def test_an_order_event_before_the_contact_waits_and_is_sent_when_the_customer_registers():
    customer_id, order_id = uuid.uuid4(), uuid.uuid4()
    handle(orders.OrderConfirmed, confirmed(order_id, customer_id))  # no exception: nothing blocks

    waiting = Notification.objects.using(DB).get()
    assert (waiting.to_email, waiting.sent_at) == (None, None)
    assert services.notifications_deliver_due(older_than=timedelta(0)) == 0
    assert mail.outbox == [] and sent_events() == []

    handle(customers.CustomerRegistered, registered(customer_id, "late@example.com"))
    [message] = mail.outbox
    assert message.to == ["late@example.com"] and "Hello there," in message.body
    assert Notification.objects.using(DB).get().sent_at is not None
    assert len(sent_events()) == 1

    # A replayed registration neither re-sends nor changes the contact.
    handle(customers.CustomerRegistered, registered(customer_id, "late@example.com"))
    assert len(mail.outbox) == 1
    assert Contact.objects.using(DB).get().email == "late@example.com"


def test_an_email_change_redirects_later_emails():
    customer_id, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    handle(customers.CustomerRegistered, registered(customer_id, "old@example.com"))
    handle(orders.OrderConfirmed, confirmed(first, customer_id))
    handle(
        customers.CustomerEmailChanged,
        {"customer_id": str(customer_id), "email": "new@example.com", "previous_email": "old@example.com"},
    )
    handle(orders.OrderShipped, order_ref(first, customer_id))
    handle(orders.OrderConfirmed, confirmed(second, customer_id))

    assert [(m.to, m.subject.split()[-1]) for m in mail.outbox] == [
        (["old@example.com"], "confirmed"),
        (["new@example.com"], "way"),
        (["new@example.com"], "confirmed"),
    ]
    # A late duplicate of the registration must not bring the old address back.
    handle(customers.CustomerRegistered, registered(customer_id, "old@example.com"))
    assert Contact.objects.using(DB).get().email == "new@example.com"


def test_cancellations_give_the_reason_and_are_the_only_mail_a_deactivated_customer_gets():
    customer_id, shipped, cancelled, declined = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    handle(customers.CustomerRegistered, registered(customer_id, "gone@example.com"))
    handle(
        orders.OrderCancelled,
        {
            **order_ref(declined, customer_id),
            "reason": "payment_declined",
            "total": {"amount": "5.00", "currency": "USD"},
        },
    )
    handle(customers.CustomerDeactivated, {"customer_id": str(customer_id)})
    handle(orders.OrderShipped, order_ref(shipped, customer_id))
    handle(
        orders.OrderCancelled,
        {
            **order_ref(cancelled, customer_id),
            "reason": "damaged & not replaceable",
            "total": {"amount": "7.50", "currency": "USD"},
        },
    )

    assert len(mail.outbox) == 2
    assert "was cancelled: the payment was declined." in mail.outbox[0].body
    assert "was cancelled: damaged & not replaceable." in mail.outbox[1].body  # plain text, not HTML-escaped
    assert "(7.50 USD)" in mail.outbox[1].body
    withheld = Notification.objects.using(DB).get(order_id=shipped)
    assert (withheld.kind, withheld.to_email, withheld.sent_at) == ("order_shipped", None, None)
    assert services.notifications_deliver_due(older_than=timedelta(0)) == 0
    assert len(mail.outbox) == 2


def _port_nobody_listens_on() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_notification_the_mail_server_refused_is_sent_by_the_retry_task(settings):
    customer_id, order_id = uuid.uuid4(), uuid.uuid4()
    handle(customers.CustomerRegistered, registered(customer_id, "ada@example.com"))
    # A real SMTP backend pointed at a closed port: the post-commit send fails after the commit.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _port_nobody_listens_on(), 2
    handle(orders.OrderConfirmed, confirmed(order_id, customer_id))

    failed = Notification.objects.using(DB).get()
    assert (failed.sent_at, failed.to_email, failed.attempts) == (None, "ada@example.com", 1)
    assert "Connection" in failed.last_error or "refused" in failed.last_error.lower()
    assert sent_events() == []

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert deliver_due_notifications() == 0  # too young: its own post-commit send may still be running
    Notification.objects.using(DB).update(created_at=failed.created_at - timedelta(minutes=1))
    assert deliver_due_notifications() == 1
    assert deliver_due_notifications() == 0
    assert len(mail.outbox) == 1 and len(sent_events()) == 1
    sent = Notification.objects.using(DB).get()
    assert sent.sent_at is not None and sent.attempts == 2 and sent.last_error == ""


def test_a_notification_being_sent_elsewhere_is_skipped_not_sent_twice():
    customer_id, order_id = uuid.uuid4(), uuid.uuid4()
    handle(customers.CustomerRegistered, registered(customer_id, "ada@example.com"))
    # Committed and addressed, but its post-commit send never ran (as after a crash).
    notification = Notification.objects.using(DB).create(
        order_id=order_id,
        customer_id=customer_id,
        kind="order_delivered",
        subject="Your order was delivered",
        body="Hello",
        to_email="ada@example.com",
    )
    locked, release = threading.Event(), threading.Event()

    def other_sender() -> None:  # holds the row lock as a concurrent deliverer would mid-send
        try:
            with transaction.atomic(using=DB):
                Notification.objects.using(DB).select_for_update().get(id=notification.id)
                locked.set()
                release.wait(10)
        finally:
            connections[DB].close()

    thread = threading.Thread(target=other_sender)
    thread.start()
    assert locked.wait(10)
    try:
        assert services.notification_deliver(notification_id=notification.id) is False
        assert mail.outbox == []
    finally:
        release.set()
        thread.join(10)
    assert services.notification_deliver(notification_id=notification.id) is True
    assert services.notification_deliver(notification_id=notification.id) is False
    assert len(mail.outbox) == 1 and mail.outbox[0].subject.endswith("was delivered")


def test_customers_see_their_own_notifications_newest_first(api, make_customer):
    account, client = make_customer(name="Grace")
    other, other_client = make_customer()
    for customer in (account, other):
        handle(customers.CustomerRegistered, registered(customer.id, customer.email, customer.name))
    first, second, theirs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    handle(orders.OrderConfirmed, confirmed(first, account.id))
    handle(orders.OrderShipped, order_ref(first, account.id))
    handle(orders.OrderConfirmed, confirmed(second, account.id))
    handle(orders.OrderConfirmed, confirmed(theirs, other.id))

    response = client.get("/api/notifications/")
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"count", "next", "previous", "results"} and page["count"] == 3
    assert [(n["order_id"], n["kind"]) for n in page["results"]] == [
        (str(second), "order_confirmed"),
        (str(first), "order_shipped"),
        (str(first), "order_confirmed"),
    ]
    item = page["results"][0]
    assert set(item) == {"id", "kind", "order_id", "subject", "sent_at"}
    assert item["subject"] == f"Your order {str(second)[:8].upper()} is confirmed" and item["sent_at"]

    assert [n["order_id"] for n in other_client.get("/api/notifications/").json()["results"]] == [str(theirs)]
    anonymous = api.get("/api/notifications/")
    assert anonymous.status_code == 401 and anonymous["Content-Type"] == "application/problem+json"


def test_the_endpoint_is_in_the_openapi_schema_with_an_example(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/notifications/"]["get"]
    assert {"jwtAuth": []} in operation["security"]
    content = operation["responses"]["200"]["content"]["application/json"]
    assert content["schema"]["$ref"].endswith("/PaginatedNotificationOutList")
    [example] = content["examples"].values()
    assert example["value"]["results"][0]["kind"] == "order_confirmed"


def _envelope(event_type: EventType, data: dict, subject: str) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=event_type.type,
        source=f"/orderflow/{event_type.context}",
        subject=subject,
        time=datetime.now(UTC),
        data=data,
    )


def test_the_consumer_sends_one_email_despite_a_redelivery_and_a_duplicated_publish(kafka_ns):
    customer_id, order_id = uuid.uuid4(), uuid.uuid4()
    confirmation = _envelope(orders.OrderConfirmed, confirmed(order_id, customer_id), str(order_id))
    republished = replace(confirmation, id=str(uuid.uuid4()))  # same event, new ce_id
    registration = _envelope(
        customers.CustomerRegistered, registered(customer_id, "kafka@example.com"), str(customer_id)
    )
    # The order's events are produced first: the contact may well be unknown when they are applied.
    produce(
        topic_name("orders.order"),
        [(e.subject.encode(), e.value(), e.headers()) for e in (confirmation, confirmation, republished)],
    )
    produce(
        topic_name("customers.customer"), [(str(customer_id).encode(), registration.value(), registration.headers())]
    )

    consumer = ContextConsumer("notifications", config={"group.id": f"test-{uuid.uuid4().hex[:8]}"})
    consumer.run(idle_exit_after=3.0)

    assert (consumer.applied, consumer.skipped, consumer.dead_lettered) == (3, 1, 0)
    [message] = mail.outbox
    assert message.to == ["kafka@example.com"]
    notification = Notification.objects.using(DB).get()
    assert (notification.order_id, notification.kind) == (order_id, "order_confirmed")
    assert notification.sent_at is not None
    assert len(sent_events()) == 1

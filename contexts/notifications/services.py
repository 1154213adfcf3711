"""Use cases of the notifications context; each is one transaction on the notifications database.

One notification per (order, kind): the row is unique and inserted in the consumer's transaction,
so a redelivered or re-published order event finds it and does nothing. The email goes out only
after that commit, in `notification_deliver` (see there for why it never sends twice at once).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from email.utils import parseaddr
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

import contracts.notifications as events
from contexts.notifications.domain import Delivery, Kind, delivery_for
from contexts.notifications.models import Contact, Notification
from contexts.notifications.rendering import render
from orderflow import tracing
from orderflow.messaging import outbox
from orderflow.tracing import TraceContext
from orderflow.unit_of_work import unit_of_work

DB = "notifications"
# The post-commit send normally happens within milliseconds; the retry task leaves younger rows
# to it so the two rarely meet (when they do, the row lock decides).
RETRY_AFTER = timedelta(seconds=10)
RETRY_BATCH = 100

log = logging.getLogger(__name__)


# -- the customer-contact replica -----------------------------------------------------------------


def _contact_locked(customer_id: uuid.UUID, **defaults: Any) -> tuple[Contact, bool]:
    """The contact row, locked; created (with `defaults`) if missing.

    Order and customer events may be applied by different consumer instances at the same time.
    Both sides lock this row first, so a notification recorded while the contact is unknown and
    a registration applied concurrently never miss each other (the later one sees the earlier).
    """
    return Contact.objects.using(DB).select_for_update().get_or_create(customer_id=customer_id, defaults=defaults)


def contact_register(*, customer_id: uuid.UUID, email: str, name: str) -> Contact:
    """Remember a registered customer and send what was waiting for their address."""
    with unit_of_work(DB):
        contact, created = _contact_locked(customer_id, email=email, name=name)
        if not created:
            # A placeholder (order seen first) gets filled in; a known contact keeps its newer
            # email and its active flag, so a replayed registration changes nothing.
            filled = [field for field in ("email", "name") if not getattr(contact, field)]
            if filled:
                contact.email, contact.name = contact.email or email, contact.name or name
                contact.save(using=DB, update_fields=[*filled, "updated_at"])
        _readdress(contact)
    return contact


def contact_change_email(*, customer_id: uuid.UUID, email: str) -> Contact:
    """Later emails, and those not sent yet, go to the new address."""
    with unit_of_work(DB):
        contact, created = _contact_locked(customer_id, email=email)
        if not created and contact.email != email:
            contact.email = email
            contact.save(using=DB, update_fields=["email", "updated_at"])
        _readdress(contact)
    return contact


def contact_deactivate(*, customer_id: uuid.UUID) -> Contact:
    with unit_of_work(DB):
        contact, created = _contact_locked(customer_id, active=False)
        if not created and contact.active:
            contact.active = False
            contact.save(using=DB, update_fields=["active", "updated_at"])
        _readdress(contact)
    return contact


def _readdress(contact: Contact) -> None:
    """Point the customer's unsent notifications at what the contact now allows: its current
    email, or nobody (unknown address, or withheld from a deactivated customer)."""
    recipient = contact.to_domain()
    ready: list[uuid.UUID] = []
    unsent = (
        Notification.objects.using(DB)
        .select_for_update()
        .filter(customer_id=contact.customer_id, sent_at__isnull=True)
        .order_by("id")
    )
    for notification in unsent:
        to_email = recipient.email if delivery_for(notification.kind_enum, recipient) is Delivery.SEND else None
        if notification.to_email != to_email:
            notification.to_email = to_email
            notification.save(using=DB, update_fields=["to_email"])
        if to_email:
            ready.append(notification.id)
    _deliver_after_commit([(notification_id, tracing.current()) for notification_id in ready])


# -- notifications --------------------------------------------------------------------------------


def notification_record(
    *, order_id: uuid.UUID, customer_id: uuid.UUID, kind: Kind, details: dict[str, Any]
) -> Notification:
    """Record the (order, kind) notification once and send it after commit if its address is known.

    Never waits for the customer's contact: raising here would block the partition and the
    customer event that would unblock it. Without an address the row waits, unaddressed, and
    `contact_register` sends it.
    """
    with unit_of_work(DB):
        existing = Notification.objects.using(DB).filter(order_id=order_id, kind=kind).first()
        if existing is not None:
            return existing  # a redelivery or a duplicate publish: nothing more to send
        contact, _ = _contact_locked(customer_id)  # a placeholder until the customer's events arrive
        subject, body = render(kind=kind, order_id=order_id, name=contact.name, details=details)
        send = delivery_for(kind, contact.to_domain()) is Delivery.SEND
        notification = Notification(
            order_id=order_id,
            customer_id=customer_id,
            kind=kind.value,
            subject=subject,
            body=body,
            to_email=contact.email if send else None,
        )
        try:
            with transaction.atomic(using=DB):  # a savepoint, so losing a race does not abort the caller
                notification.save(using=DB, force_insert=True)
        except IntegrityError:
            return Notification.objects.using(DB).get(order_id=order_id, kind=kind)
        if send:
            _deliver_after_commit([(notification.id, tracing.current())])
    return notification


def _deliver_after_commit(sends: list[tuple[uuid.UUID, TraceContext]]) -> None:
    """Send these notifications, in order, once the transaction commits (one hook for them all).

    Each is sent under the trace it was recorded under, so its NotificationSent continues the
    trace of the event that caused it: the hook runs at the commit, and in a consumer's batch
    transaction that is after every handler has left its event's trace.
    """
    if sends:
        transaction.on_commit(partial(_deliver_each, sends), using=DB)


def _deliver_each(sends: list[tuple[uuid.UUID, TraceContext]]) -> None:
    for notification_id, trace in sends:
        # A failure after our commit must not surface as the handler's failure (the consumer
        # would dead-letter an event whose effect is already committed), nor stop the other
        # sends; the retry task covers it.
        try:
            with tracing.use(trace):
                notification_deliver(notification_id=notification_id)
        except Exception:
            log.exception("post-commit send of notification %s failed; the retry task will send it", notification_id)


def notification_deliver(*, notification_id: uuid.UUID) -> bool:
    """Send one addressed, unsent notification. True if this call sent it.

    The row stays locked (SKIP LOCKED for others) from before the send until sent_at and the
    NotificationSent outbox row commit together, so the post-commit send and the retry task never
    both send it, and NotificationSent means the mail server accepted the message. The one window
    left: a crash after the server accepted it and before this commit leaves it unsent, and it is
    sent again (at-least-once email; its fixed Message-ID lets mail clients fold the duplicate).
    """
    with unit_of_work(DB):
        notification = (
            Notification.objects.using(DB)
            .select_for_update(skip_locked=True)
            .filter(id=notification_id, sent_at__isnull=True, to_email__isnull=False)
            .first()
        )
        if notification is None:
            return False  # already sent, not addressed, or being sent right now elsewhere
        notification.attempts += 1
        try:
            _send(notification)
        except Exception as exc:  # mail server down, address refused...: stays unsent, retried later
            notification.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            notification.save(using=DB, update_fields=["attempts", "last_error"])
            log.warning("notification %s not sent (attempt %d): %s", notification.id, notification.attempts, exc)
            return False
        notification.sent_at = timezone.now()
        notification.last_error = ""
        notification.save(using=DB, update_fields=["attempts", "last_error", "sent_at"])
        outbox.record(
            event_type=events.NotificationSent,
            aggregate_id=str(notification.id),
            data={
                "notification_id": str(notification.id),
                "order_id": str(notification.order_id),
                "customer_id": str(notification.customer_id),
                "kind": notification.kind,
            },
        )
    return True


def _send(notification: Notification) -> None:
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "orderflow.local"
    EmailMessage(
        subject=notification.subject,
        body=notification.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.to_email],
        headers={"Message-ID": f"<notification-{notification.id}@{domain}>"},
    ).send()


def notifications_deliver_due(*, older_than: timedelta = RETRY_AFTER, limit: int = RETRY_BATCH) -> int:
    """Send what was committed but not sent: a crash before the post-commit send, or a failed send.

    Fewest attempts first, so a few undeliverable addresses cannot starve the rest.
    """
    due = (
        Notification.objects.using(DB)
        .filter(sent_at__isnull=True, to_email__isnull=False, created_at__lt=timezone.now() - older_than)
        .order_by("attempts", "created_at")
        .values_list("id", flat=True)[:limit]
    )
    return sum(notification_deliver(notification_id=notification_id) for notification_id in list(due))

"""Use cases of the notifications context; each is one transaction on the notifications database.

One notification per (order, kind): the row is unique and inserted in the consumer's transaction,
so a redelivered or re-published order event finds it and does nothing. The email goes out only
after that commit, in `notifications_deliver` (see there for why it never sends twice at once).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import partial
from typing import Any, NamedTuple

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

import contracts.notifications as events
from contexts.notifications.domain import Delivery, Kind, Recipient, delivery_for
from contexts.notifications.models import Contact, Notification
from contexts.notifications.rendering import render
from orderflow import tracing
from orderflow.messaging import bulk, outbox
from orderflow.messaging.bulk import json_rows
from orderflow.tracing import TraceContext
from orderflow.unit_of_work import unit_of_work

DB = "notifications"
# The post-commit send normally happens within milliseconds; the retry task leaves younger rows
# to it so the two rarely meet (when they do, the row lock decides).
RETRY_AFTER = timedelta(seconds=10)
RETRY_BATCH = 100
# Notifications sent in one transaction at most: bounds how many a crash mid-send sends twice.
DELIVER_CHUNK = 20

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


class OrderToNotify(NamedTuple):
    order_id: uuid.UUID
    customer_id: uuid.UUID
    details: dict[str, Any]  # the order event's data
    trace: TraceContext | None = None  # the cause's trace, for the send's NotificationSent


def notifications_record(*, kind: Kind, orders: Sequence[OrderToNotify]) -> list[uuid.UUID]:
    """`notification_record` for a run of one kind's order events, in the order given, with the
    same effects as calling it for each in turn: the same notifications, contact placeholders and
    sends. Returns the orders notified now, in order.

    Set-based, for a consumer's batch: one read of the notifications already recorded, one lock of
    the contacts involved (in customer order; placeholders for unknown ones, as `_contact_locked`
    creates them), one INSERT of the new notifications, and one commit hook sending the addressed
    ones in order, each through `notification_deliver` as the one-by-one path does.
    """
    with unit_of_work(DB):
        if not orders:
            return []
        with bulk.PreparedCursor(DB) as cursor:
            todo = _not_yet_notified(cursor, kind, orders)
            if not todo:
                return []
            contacts = _contacts_locked(cursor, sorted({order.customer_id for order in todo}))
            rows = []
            for n, order in enumerate(todo):
                recipient, name = contacts[order.customer_id]
                subject, body = render(kind=kind, order_id=order.order_id, name=name, details=order.details)
                to_email = recipient.email if delivery_for(kind, recipient) is Delivery.SEND else None
                # created_at per row, as the model's default: a customer's list keeps their order.
                rows.append(
                    _NewRow(n, uuid.uuid4(), order.order_id, order.customer_id, subject, body, to_email, timezone.now())
                )
            inserted = _notifications_insert(cursor, kind, rows)
        recorded = [(order, row) for order, row in zip(todo, rows, strict=True) if row.id in inserted]
        _deliver_after_commit([(row.id, order.trace or tracing.current()) for order, row in recorded if row.to_email])
        return [order.order_id for order, _row in recorded]


class _NewRow(NamedTuple):
    """A notification to insert; `n` keeps the run's order."""

    n: int
    id: uuid.UUID
    order_id: uuid.UUID
    customer_id: uuid.UUID
    subject: str
    body: str
    to_email: str | None
    created_at: datetime


def _not_yet_notified(cursor, kind: Kind, orders: Sequence[OrderToNotify]) -> list[OrderToNotify]:
    """The orders without a notification of this kind yet, each once (the first event of an order
    in the run records it; a later one finds it, as one by one)."""
    cursor.execute(
        f"SELECT order_id FROM {_table(Notification)} WHERE kind = %s AND order_id = ANY(%s::uuid[])",
        [kind.value, _uuid_array(order.order_id for order in orders)],
    )
    done = {row[0] for row in cursor.fetchall()}
    todo = []
    for order in orders:
        if order.order_id not in done:
            done.add(order.order_id)
            todo.append(order)
    return todo


def _contacts_locked(cursor, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[Recipient, str]]:
    """`_contact_locked` for many customers: {customer_id: (recipient, name)}, every row locked.

    Known contacts are locked in one statement, in customer order. Unknown ones get a placeholder,
    as one by one; a contact another transaction inserted meanwhile (a registration) makes our
    placeholder's INSERT wait for its commit and skip it, and is then read and locked like the
    others (get_or_create's IntegrityError path), so the two never miss each other.
    """
    table = _table(Contact)
    locked_sql = (
        f"SELECT customer_id, email, name, active FROM {table} "
        "WHERE customer_id = ANY(%s::uuid[]) ORDER BY customer_id FOR UPDATE"
    )
    cursor.execute(locked_sql, [_uuid_array(customer_ids)])
    contacts = {row[0]: (Recipient(email=row[1], active=row[3]), row[2]) for row in cursor.fetchall()}
    missing = [customer_id for customer_id in customer_ids if customer_id not in contacts]
    if not missing:
        return contacts
    cursor.execute(
        f"INSERT INTO {table} (customer_id, email, name, active, updated_at) "
        "SELECT c, '', '', true, %s FROM unnest(%s::uuid[]) AS c ORDER BY c "
        "ON CONFLICT (customer_id) DO NOTHING RETURNING customer_id",
        [timezone.now(), _uuid_array(missing)],
    )
    for (customer_id,) in cursor.fetchall():
        contacts[customer_id] = (Recipient(email="", active=True), "")
    raced = [customer_id for customer_id in missing if customer_id not in contacts]
    if raced:
        cursor.execute(locked_sql, [_uuid_array(raced)])
        contacts.update({row[0]: (Recipient(email=row[1], active=row[3]), row[2]) for row in cursor.fetchall()})
    return contacts


def _notifications_insert(cursor, kind: Kind, rows: list[_NewRow]) -> set[uuid.UUID]:
    """Insert the rows in their order; returns the ids inserted. One that another transaction
    inserted for the same (order, kind) since our read is theirs and is skipped, as the one-by-one
    savepoint gives it up (ON CONFLICT waits for that transaction, as the unique index would)."""
    cursor.execute(
        f"INSERT INTO {_table(Notification)} "
        "(id, order_id, customer_id, kind, subject, body, to_email, sent_at, attempts, last_error, created_at) "
        "SELECT r.id, r.order_id, r.customer_id, %s, r.subject, r.body, r.to_email, NULL, 0, '', r.created_at "
        "FROM json_to_recordset(%s::json) AS r(n integer, id uuid, order_id uuid, customer_id uuid, subject text, "
        "body text, to_email text, created_at timestamptz) ORDER BY r.n "
        "ON CONFLICT (order_id, kind) DO NOTHING RETURNING id",
        [kind.value, json_rows(_NewRow._fields, rows)],
    )
    return {row[0] for row in cursor.fetchall()}


def _table(model) -> str:
    return connections[DB].ops.quote_name(model._meta.db_table)


def _uuid_array(ids: Iterable[uuid.UUID]) -> str:
    # An array literal: a uuid's text needs no quoting (see orderflow/messaging/bulk.py for why
    # batch statements avoid a parameter per value).
    return "{" + ",".join(str(i) for i in ids) + "}"


def _deliver_after_commit(sends: list[tuple[uuid.UUID, TraceContext]]) -> None:
    """Send these notifications, in order, once the transaction commits (one hook for them all).

    Each NotificationSent continues the trace its notification was recorded under: the hook runs
    at the commit, and in a consumer's batch transaction that is after every handler has left its
    event's trace.
    """
    if sends:
        transaction.on_commit(partial(_deliver_all, sends), using=DB)


def _deliver_all(sends: list[tuple[uuid.UUID, TraceContext]]) -> None:
    for chunk in _chunks(sends):
        # A failure after our commit must not surface as the handler's failure (the consumer
        # would dead-letter an event whose effect is already committed), nor stop the other
        # chunks; the retry task covers it.
        try:
            notifications_deliver(sends=chunk)
        except Exception:
            log.exception("post-commit send of %d notification(s) failed; the retry task will send them", len(chunk))


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """At most DELIVER_CHUNK at a time: the most a crash mid-send can send twice."""
    for start in range(0, len(items), DELIVER_CHUNK):
        yield items[start : start + DELIVER_CHUNK]


def notification_deliver(*, notification_id: uuid.UUID) -> bool:
    """Send one addressed, unsent notification. True if this call sent it."""
    return notifications_deliver(sends=[(notification_id, None)]) == 1


def notifications_deliver(*, sends: Sequence[tuple[uuid.UUID, TraceContext | None]]) -> int:
    """Send the addressed, unsent ones of these notifications, in order, over one connection to
    the mail server; returns how many this call sent. `sends` pairs each id with the trace its
    NotificationSent continues (None: the current one).

    The rows stay locked (SKIP LOCKED for others) from before the sends until their sent_at and
    NotificationSent outbox rows commit together, so the post-commit send and the retry task never
    both send one, and NotificationSent means the mail server accepted the message. A send that
    fails leaves its notification unsent with the error, for the retry task, and the others go on.
    The one window left: a crash after the server accepted messages and before this commit leaves
    them unsent, and they are sent again (at-least-once email; each message's fixed Message-ID lets
    mail clients fold the duplicate) — which is why callers pass at most DELIVER_CHUNK at a time.
    One transaction, one connection, one UPDATE and one outbox INSERT for all of them: a
    consumer's batch of order events is sent at once instead of a transaction (and, with SMTP, a
    connection) per email.
    """
    traces = dict(sends)
    with unit_of_work(DB):
        locked = {
            notification.id: notification
            for notification in Notification.objects.using(DB)
            .select_for_update(skip_locked=True)
            .filter(id__in=list(traces), sent_at__isnull=True, to_email__isnull=False)
        }
        # Already sent, not addressed, or being sent right now elsewhere: left out.
        notifications = [locked[notification_id] for notification_id in traces if notification_id in locked]
        if not notifications:
            return 0
        sent = _send_all(notifications)
        Notification.objects.using(DB).bulk_update(notifications, ["attempts", "last_error", "sent_at"])
        outbox.record_many(
            entries=[
                outbox.Entry(
                    events.NotificationSent,
                    str(notification.id),
                    {
                        "notification_id": str(notification.id),
                        "order_id": str(notification.order_id),
                        "customer_id": str(notification.customer_id),
                        "kind": notification.kind,
                    },
                    traces[notification.id],
                )
                for notification in sent
            ]
        )
    return len(sent)


def _send_all(notifications: list[Notification]) -> list[Notification]:
    """Send each over one mail connection, counting the attempt and setting sent_at or last_error;
    returns those the server accepted. A connection that cannot be opened fails them all."""
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:  # mail server down: all stay unsent, retried later
        for notification in notifications:
            _not_sent(notification, exc)
        return []
    sent = []
    try:
        for notification in notifications:
            try:
                _message(notification, connection).send()
            except Exception as exc:  # address refused, connection lost...: stays unsent, retried later
                _not_sent(notification, exc)
            else:
                notification.attempts += 1
                notification.sent_at = timezone.now()
                notification.last_error = ""
                sent.append(notification)
    finally:
        try:
            connection.close()
        except Exception as exc:  # the messages were accepted; a failed QUIT changes nothing
            log.warning("closing the mail connection: %s", exc)
    return sent


def _not_sent(notification: Notification, exc: Exception) -> None:
    notification.attempts += 1
    notification.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    log.warning("notification %s not sent (attempt %d): %s", notification.id, notification.attempts, exc)


def _message(notification: Notification, connection) -> EmailMessage:
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "orderflow.local"
    return EmailMessage(
        subject=notification.subject,
        body=notification.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.to_email],
        headers={"Message-ID": f"<notification-{notification.id}@{domain}>"},
        connection=connection,
    )


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
    return sum(
        notifications_deliver(sends=chunk) for chunk in _chunks([(notification_id, None) for notification_id in due])
    )

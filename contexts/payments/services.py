"""Use cases of the payments context; each is one transaction on the payments database.

The gateway is called inside that transaction, after the payment row (or, before it exists, the
order) is locked and its state checked: a redelivered or concurrent event waits for the first
one to commit, then sees the new state and does not call the gateway again.
"""

from __future__ import annotations

import logging
import uuid
import zlib

from django.db import connections

import contracts.payments as events
from contexts.payments import domain
from contexts.payments.gateway import get_gateway
from contexts.payments.models import Payment
from orderflow.domain import Money
from orderflow.messaging import outbox
from orderflow.unit_of_work import unit_of_work

DB = "payments"
log = logging.getLogger(__name__)

# First half of the two-int advisory lock key (a key space apart from the relay's bigint locks).
_ORDER_LOCK_SPACE = zlib.crc32(b"orderflow.payments.order") & 0x7FFFFFFF


def _order_lock_key(order_id: uuid.UUID) -> int:
    """Second half of an order's advisory lock key."""
    return zlib.crc32(order_id.bytes) & 0x7FFFFFFF


def _lock_order(order_id: uuid.UUID) -> None:
    """Serialize work on one order before its payment row exists: SELECT ... FOR UPDATE cannot
    lock a missing row, and two authorizations must not both reach the gateway."""
    with connections[DB].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ORDER_LOCK_SPACE, _order_lock_key(order_id)])


def _locked(order_id: uuid.UUID) -> Payment | None:
    return Payment.objects.using(DB).select_for_update().filter(order_id=order_id).first()


def payment_authorize(*, order_id: uuid.UUID, customer_id: uuid.UUID, amount: Money, card_token: str) -> Payment:
    """Authorize an order's total; publish PaymentAuthorized or PaymentDeclined.

    Idempotent per order: if the order already has a payment, that payment is returned untouched.
    """
    with unit_of_work(DB):
        _lock_order(order_id)
        existing = Payment.objects.using(DB).filter(order_id=order_id).first()
        if existing is not None:
            return existing
        payment = domain.Payment.authorize(
            order_id=order_id, amount=amount, card_token=card_token, gateway=get_gateway()
        )
        row = Payment(customer_id=customer_id)
        row.update_from_domain(payment)
        row.save(using=DB, force_insert=True)
        _publish(payment)
    return row


def payment_capture(*, order_id: uuid.UUID) -> Payment | None:
    """The order is confirmed: take the money. Only an AUTHORIZED payment is captured; a repeated
    confirmation finds it CAPTURED and does nothing."""
    with unit_of_work(DB):
        row = _locked(order_id)
        if not _capturable(order_id, row.status if row is not None else None):
            return row
        payment = row.to_domain()
        payment.capture(get_gateway())
        _save(row, payment)
    return row


def _capturable(order_id: uuid.UUID, status: str | None) -> bool:
    """Whether a confirmed order's payment in `status` (None: no payment) is captured now."""
    if status == domain.PaymentStatus.AUTHORIZED:
        return True
    if status != domain.PaymentStatus.CAPTURED:  # a repeated confirmation is normal; this is not
        log.warning("order %s confirmed while its payment is %s: nothing captured", order_id, status)
    return False


def payment_cancel(*, order_id: uuid.UUID) -> Payment | None:
    """The order is cancelled: void an authorization or refund a capture; anything else is left."""
    with unit_of_work(DB):
        # Same lock as authorize: a cancel racing a late authorization waits for it.
        _lock_order(order_id)
        row = _locked(order_id)
        if row is None:
            _nothing_to_compensate(order_id)
            return None
        payment = row.to_domain()
        payment.compensate(get_gateway())
        _save(row, payment)
    return row


def _nothing_to_compensate(order_id: uuid.UUID) -> None:
    # OrderPlaced and OrderCancelled share a partition, so this means the placement was never
    # applied here (e.g. dead-lettered): there is nothing to compensate.
    log.warning("order %s cancelled but it has no payment: nothing to void or refund", order_id)


def _save(row: Payment, payment: domain.Payment) -> None:
    row.update_from_domain(payment)
    row.save(using=DB, update_fields=["status", "updated_at"])
    _publish(payment)


_EVENT_TYPES = {
    domain.Authorized: events.PaymentAuthorized,
    domain.Declined: events.PaymentDeclined,
    domain.Captured: events.PaymentCaptured,
    domain.Voided: events.PaymentVoided,
    domain.Refunded: events.PaymentRefunded,
}


def _publish(payment: domain.Payment) -> None:
    for entry in _replies(payment):
        outbox.record(event_type=entry.event_type, aggregate_id=entry.aggregate_id, data=entry.data)


def _replies(payment: domain.Payment) -> list[outbox.Entry]:
    """The integration events for what `payment` recorded since the last call, in order."""
    replies = []
    for event in payment.pull_events():
        assert isinstance(event, domain.PaymentEvent)
        data: dict = {
            "payment_id": str(event.payment_id),
            "order_id": str(event.order_id),
            "amount": event.amount.to_dict(),
        }
        if isinstance(event, domain.Declined):
            data["reason"] = str(event.reason)
        replies.append(outbox.Entry(_EVENT_TYPES[type(event)], str(event.payment_id), data))
    return replies

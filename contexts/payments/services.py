"""Use cases of the payments context; each is one transaction on the payments database.

The gateway is called inside that transaction, after the payment row (or, before it exists, the
order) is locked and its state checked: a redelivered or concurrent event waits for the first
one to commit, then sees the new state and does not call the gateway again.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from django.db import connections
from django.utils import timezone

import contracts.payments as events
from contexts.payments import domain
from contexts.payments.gateway import get_gateway
from contexts.payments.models import Payment
from orderflow.domain import Money
from orderflow.messaging import bulk, outbox
from orderflow.messaging.bulk import json_rows
from orderflow.tracing import TraceContext
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


def _lock_orders(cursor, order_ids: Iterable[uuid.UUID]) -> None:
    """`_lock_order` for many orders in one statement. The keys are taken in ascending order (the
    sort comes before the volatile lock call is evaluated), so two runs sharing orders never
    deadlock on each other."""
    keys = sorted({_order_lock_key(order_id) for order_id in order_ids})
    cursor.execute(
        "SELECT pg_advisory_xact_lock(%s, k) FROM unnest(%s::integer[]) AS k ORDER BY k",
        [_ORDER_LOCK_SPACE, "{" + ",".join(map(str, keys)) + "}"],
    )


def _uuid_array(ids: Iterable[uuid.UUID]) -> str:
    """Uuids as an array literal (their text needs no quoting), for `= ANY(%s::uuid[])`."""
    return "{" + ",".join(map(str, ids)) + "}"


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


class OrderToAuthorize(NamedTuple):
    order_id: uuid.UUID
    customer_id: uuid.UUID
    amount: Money
    card_token: str
    trace: TraceContext | None = None  # the cause's trace, for the reply event's headers


def orders_authorize(*, orders: Sequence[OrderToAuthorize]) -> list[domain.Payment]:
    """`payment_authorize` for many orders at once, in the order given, with the same effects as
    calling it for each in turn: the same payments, gateway calls and PaymentAuthorized or
    PaymentDeclined events (one per order without a payment before; an order given twice: the
    first wins). Returns the new payments, in order.

    Set-based, for a consumer's run of OrderPlaced: the order locks of the whole run in one
    statement, one read of the existing payments, the domain authorization per new order (gateway
    calls in the order given), then one INSERT each of the payments and of their events.
    """
    with unit_of_work(DB):
        if not orders:
            return []
        connection = connections[DB]
        payments = connection.ops.quote_name(Payment._meta.db_table)
        with bulk.PreparedCursor(DB) as cursor:
            _lock_orders(cursor, (order.order_id for order in orders))
            cursor.execute(
                f"SELECT order_id FROM {payments} WHERE order_id = ANY(%s::uuid[])",
                [_uuid_array(order.order_id for order in orders)],
            )
            decided = {row[0] for row in cursor.fetchall()}  # an existing payment is left untouched
            gateway = get_gateway()
            new, rows, replies = [], [], []
            for order in orders:
                if order.order_id in decided:
                    continue
                decided.add(order.order_id)  # the same order twice in the run: the first wins
                payment = domain.Payment.authorize(
                    order_id=order.order_id, amount=order.amount, card_token=order.card_token, gateway=gateway
                )
                new.append(payment)
                rows.append(
                    (
                        payment.id,
                        payment.order_id,
                        order.customer_id,
                        payment.amount.amount,
                        payment.amount.currency,
                        payment.status.value,
                        payment.decline_reason or "",  # as Payment.update_from_domain stores it
                    )
                )
                replies.extend(_replies(payment, order.trace))
            if not new:
                return []
            now = timezone.now()
            with bulk.pipelined(DB):  # two writes, one round trip
                cursor.execute(
                    f"INSERT INTO {payments} "
                    "(id, order_id, customer_id, amount, currency, status, decline_reason, created_at, updated_at) "
                    "SELECT r.id, r.order_id, r.customer_id, r.amount, r.currency, r.status, r.decline_reason, "
                    "%s, %s FROM json_to_recordset(%s::json) AS r(id uuid, order_id uuid, customer_id uuid, "
                    "amount numeric, currency text, status text, decline_reason text)",
                    [
                        now,
                        now,
                        json_rows(
                            ("id", "order_id", "customer_id", "amount", "currency", "status", "decline_reason"), rows
                        ),
                    ],
                )
                outbox.record_many(entries=replies)
        return new


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


class OrderRef(NamedTuple):
    order_id: uuid.UUID
    trace: TraceContext | None = None  # the cause's trace, for the reply event's headers


def orders_capture(*, orders: Sequence[OrderRef]) -> list[uuid.UUID]:
    """`payment_capture` for many orders at once, in the order given, with the same effects as
    calling it for each in turn (gateway calls, payments, PaymentCaptured events, warnings).
    Returns the orders captured now, in order."""

    def capture(order_id: uuid.UUID, payment: domain.Payment | None, gateway: domain.PaymentGateway) -> bool:
        if not _capturable(order_id, payment.status if payment is not None else None):
            return False
        assert payment is not None  # capturable: it is AUTHORIZED
        payment.capture(gateway)
        return True

    return _payments_change(orders, lock_orders=False, change=capture)


def orders_cancel(*, orders: Sequence[OrderRef]) -> list[uuid.UUID]:
    """`payment_cancel` for many orders at once, in the order given, with the same effects as
    calling it for each in turn (gateway calls, payments, PaymentVoided/PaymentRefunded events,
    warnings). Returns the orders whose payment was voided or refunded now, in order."""

    def compensate(order_id: uuid.UUID, payment: domain.Payment | None, gateway: domain.PaymentGateway) -> bool:
        if payment is None:
            _nothing_to_compensate(order_id)
            return False
        payment.compensate(gateway)
        return True  # one by one saves the payment even when it held nothing (updated_at moves)

    return _payments_change(orders, lock_orders=True, change=compensate)


def _payments_change(
    orders: Sequence[OrderRef],
    *,
    lock_orders: bool,
    change: Callable[[uuid.UUID, domain.Payment | None, domain.PaymentGateway], bool],
) -> list[uuid.UUID]:
    """Apply `change(order_id, payment, gateway)` to the payment of each order in turn: the payment
    as the orders before left it (None: the order has none); it returns whether the one-by-one
    path would save the payment. Locks like the one-by-one path with one statement each (the
    orders' advisory locks first if `lock_orders`, then the payment rows in order id order); one
    UPDATE of the saved payments and one INSERT of their events. Returns the orders that
    published an event, in order."""
    with unit_of_work(DB):
        if not orders:
            return []
        connection = connections[DB]
        payments = connection.ops.quote_name(Payment._meta.db_table)
        with bulk.PreparedCursor(DB) as cursor:
            if lock_orders:
                _lock_orders(cursor, (order.order_id for order in orders))
            cursor.execute(
                f"SELECT id, order_id, amount, currency, status, decline_reason FROM {payments} "
                "WHERE order_id = ANY(%s::uuid[]) ORDER BY order_id FOR UPDATE",
                [_uuid_array(order.order_id for order in orders)],
            )
            found = {row[1]: _payment_of_row(*row) for row in cursor.fetchall()}
            gateway = get_gateway()
            saved: dict[uuid.UUID, domain.Payment] = {}
            replies: list[outbox.Entry] = []
            published = []
            for order in orders:
                payment = found.get(order.order_id)
                if not change(order.order_id, payment, gateway):
                    continue
                assert payment is not None
                saved[payment.id] = payment
                entries = _replies(payment, order.trace)  # the same order again later: its own cause
                if entries:
                    published.append(order.order_id)
                    replies.extend(entries)
            if not saved:
                return []
            with bulk.pipelined(DB):  # two writes, one round trip
                cursor.execute(  # `p.id = ANY(…)`: through the primary key (see bulk.json_rows)
                    f"UPDATE {payments} AS p SET status = r.status, updated_at = %s "
                    "FROM json_to_recordset(%s::json) AS r(id uuid, status text) "
                    "WHERE p.id = r.id AND p.id = ANY(%s::uuid[])",
                    [
                        timezone.now(),
                        json_rows(("id", "status"), [(p.id, p.status.value) for p in saved.values()]),
                        [p.id for p in saved.values()],
                    ],
                )
                outbox.record_many(entries=replies)
        return published


def _payment_of_row(
    id_: uuid.UUID, order_id: uuid.UUID, amount, currency: str, status: str, decline_reason: str
) -> domain.Payment:
    """`Payment.to_domain` for a row read by raw SQL."""
    return domain.Payment(
        id=id_,
        order_id=order_id,
        amount=Money(amount, currency),
        status=domain.PaymentStatus(status),
        decline_reason=domain.DeclineReason(decline_reason) if decline_reason else None,
    )


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


def _replies(payment: domain.Payment, trace: TraceContext | None = None) -> list[outbox.Entry]:
    """The integration events for what `payment` recorded since the last call, in order; `trace`
    is their cause's (None: the current one)."""
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
        replies.append(outbox.Entry(_EVENT_TYPES[type(event)], str(event.payment_id), data, trace))
    return replies

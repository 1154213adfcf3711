"""Use cases of the orders context (the saga's process manager); each is one transaction on the
orders database that changes the aggregate, projects the read model, records the timeline and
writes the outbox together."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db import IntegrityError
from django.db.models import CharField, F, Func, JSONField, OuterRef
from django.db.models.functions import Cast
from django.utils import timezone

import contracts.orders as events
from contexts.orders import domain, saga_store, store
from contexts.orders.models import (
    CustomerStatus,
    IdempotencyKey,
    Order,
    OrderLine,
    OrderView,
    ProductPrice,
    TimelineEntry,
)
from contexts.orders.projection import placed_view, project
from orderflow.domain import DomainError, DomainEvent, Money
from orderflow.messaging import bulk, outbox
from orderflow.tracing import TraceContext
from orderflow.unit_of_work import unit_of_work

DB = "orders"


class IdempotencyMismatch(DomainError):
    code = "idempotency_key_reused"


class CustomerInactive(DomainError):
    code = "customer_inactive"


class OrderNotFound(LookupError):
    pass


# -- timeline ------------------------------------------------------------------------------------
def timeline_record(
    *, order_id: uuid.UUID, event_id: str, type_: str, source: str, occurred_at: datetime, data: dict
) -> None:
    # One INSERT … ON CONFLICT DO NOTHING (the entry is unique per order, event and type): a
    # redelivered event adds nothing, without a read and a savepoint on the consumer's hot path.
    TimelineEntry.objects.using(DB).bulk_create(
        [
            TimelineEntry(
                order_id=order_id, event_id=str(event_id), type=type_, source=source, occurred_at=occurred_at, data=data
            )
        ],
        ignore_conflicts=True,
    )


# -- placing -------------------------------------------------------------------------------------
def _request_hash(lines: list[dict], card_token: str) -> str:
    canonical = json.dumps(
        {"lines": [{"sku": ln["sku"], "quantity": ln["quantity"]} for ln in lines], "card_token": card_token},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replayed(customer_id: uuid.UUID, key: str, request_hash: str) -> OrderView | None:
    record = IdempotencyKey.objects.using(DB).filter(customer_id=customer_id, key=key).first()
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request body")
    return OrderView.objects.using(DB).get(id=record.order_id)


def order_place(
    *, customer_id: uuid.UUID, lines: list[dict], card_token: str = "tok_visa", idempotency_key: str | None = None
) -> tuple[OrderView, bool]:
    """Place an order (PENDING) and publish OrderPlaced. Returns (the order's read model, created).

    With an idempotency key, the same key and body return the first order (created=False).
    Everything is written by one statement (contexts/orders/store.py): the public API's hot path.
    """
    request_hash = _request_hash(lines, card_token)
    if idempotency_key and (existing := _replayed(customer_id, idempotency_key, request_hash)):
        return existing, False
    active, quotes = store.replicas(customer_id=customer_id, skus=sorted({line["sku"] for line in lines}))
    if active is False:
        raise CustomerInactive("this customer account is deactivated")
    order = domain.Order.place(
        customer_id=customer_id,
        quotes=quotes,
        card_token=card_token,
        lines=[(line["sku"], line["quantity"]) for line in lines],
    )
    (placed,) = order.pull_events()
    event_type, data = _integration_event(order, placed)
    event = outbox.prepare(event_type=event_type, aggregate_id=str(order.id), data=data)
    view = placed_view(placed, at=event.occurred_at)
    try:
        store.insert_placed(
            view=view,
            order=order,
            event=event,
            timeline_type=event_type.name,
            timeline_data=_timeline_data(data),
            idempotency=(idempotency_key, request_hash) if idempotency_key else None,
        )
    except IntegrityError:
        # A concurrent request with the same idempotency key committed first: answer with its order.
        if idempotency_key and (existing := _replayed(customer_id, idempotency_key, request_hash)):
            return existing, False
        raise
    outbox.kick_after_commit(DB)
    return view, True


def _timeline_data(data: dict) -> dict:
    # The card token stays out of the timeline (an admin page).
    return {k: v for k, v in data.items() if k != "card_token"}


# -- publishing ------------------------------------------------------------------------------------
def _integration_event(order: domain.Order, event: DomainEvent):
    """The integration event (contract and payload) for a domain event, if it has one."""
    ref = {"order_id": str(order.id), "customer_id": str(order.customer_id)}
    lines = [{"sku": ln.sku, "quantity": ln.quantity, "unit_price": ln.unit_price.to_dict()} for ln in order.lines]
    if isinstance(event, domain.Placed):
        return events.OrderPlaced, {
            **ref,
            "lines": lines,
            "total": order.total.to_dict(),
            "card_token": event.card_token,
        }
    if isinstance(event, domain.Confirmed):
        return events.OrderConfirmed, {**ref, "lines": lines, "total": order.total.to_dict()}
    if isinstance(event, domain.Cancelled):
        return events.OrderCancelled, {**ref, "reason": event.reason, "total": order.total.to_dict()}
    if isinstance(event, domain.Shipped):
        return events.OrderShipped, ref
    if isinstance(event, domain.Delivered):
        return events.OrderDelivered, ref
    return None


def _commit(order: domain.Order, *, save: Order | None = None) -> list[DomainEvent]:
    """Persist what the aggregate recorded: write model, read model, outbox and timeline."""
    now = timezone.now()
    if save is not None:
        save.update_from_domain(order)
        save.save(
            using=DB, update_fields=["status", "stock_status", "payment_status", "cancellation_reason", "updated_at"]
        )
    recorded = order.pull_events()
    project(recorded, at=now)
    for event in recorded:
        published = _integration_event(order, event)
        if published is None:
            continue
        event_type, data = published
        event_id = outbox.record(event_type=event_type, aggregate_id=str(order.id), data=data)
        # A fresh event id: a plain insert (no get-or-create round trips on the request path).
        TimelineEntry.objects.using(DB).create(
            order_id=order.id,
            event_id=str(event_id),
            type=event_type.name,
            source="orders",
            occurred_at=now,
            data=_timeline_data(data),
        )
    return recorded


def _locked(order_id: uuid.UUID) -> Order:
    """The order row, locked, with its lines (as `line_data`: [sku, quantity, unit price text]) in
    the same query: the saga applies several replies per order, each loading the aggregate."""
    lines = (
        OrderLine.objects.using(DB)
        .filter(order=OuterRef("pk"))
        .order_by("position")
        .values(
            row=Func(
                F("sku"),
                F("quantity"),
                Cast("unit_price_amount", CharField()),
                function="jsonb_build_array",
                output_field=JSONField(),
            )
        )
    )
    row = (
        Order.objects.using(DB)
        .select_for_update(of=("self",))
        .annotate(line_data=ArraySubquery(lines))
        .filter(id=order_id)
        .first()
    )
    if row is None:
        raise OrderNotFound(f"no order {order_id}")
    return row


# -- the saga ---------------------------------------------------------------------------------------
def saga_reply(
    *, order_id: uuid.UUID, reply: str, event_id: str, type_: str, source: str, occurred_at: datetime, data: dict
) -> None:
    """A participant answered (stock or payment): move the saga, record the reply on the timeline.

    Late or contradicting replies change nothing but appear on the timeline with a note.
    """
    with unit_of_work(DB):
        row = _locked(order_id)
        order = row.to_domain()
        order.reply(reply)
        notes = [e.note for e in order.events if isinstance(e, domain.ReplyNoted)]
        timeline_record(
            order_id=order_id,
            event_id=event_id,
            type_=type_,
            source=source,
            occurred_at=occurred_at,
            data={**data, **({"note": "; ".join(notes)} if notes else {})},
        )
        _commit(order, save=row)


class Reply(NamedTuple):
    """A saga reply for `saga_replies`; `reply` None is a timeline note only (`timeline_note`)."""

    order_id: uuid.UUID
    reply: str | None
    event_id: str
    type_: str
    source: str
    occurred_at: datetime
    data: dict
    trace: TraceContext | None = None  # the reply's trace, for the events it causes


def saga_replies(*, replies: Sequence[Reply]) -> None:
    """`saga_reply` (and `timeline_note`) for a run of replies, in order, with one statement per
    table: the orders consumer's batch handler. The outcome is the one-by-one outcome: the same
    transitions, timeline entries (notes included), read model and outbox rows in the same order.
    """
    with unit_of_work(DB):
        ids = sorted({r.order_id for r in replies if r.reply is not None})
        orders = saga_store.lock_orders(ids)
        missing = [order_id for order_id in ids if order_id not in orders]
        if missing:
            raise OrderNotFound(f"no order {missing[0]}")  # the consumer isolates the record one by one
        moved: set[uuid.UUID] = set()
        timeline: list[list] = []  # [order_id, event_id, type, source, occurred_at, data]
        entries: list[outbox.Entry] = []
        own: list[list] = []  # the timeline rows of the entries, their event ids filled in below
        now = timezone.now()
        for r in replies:
            if r.reply is None:
                timeline.append([r.order_id, str(r.event_id), r.type_, r.source, r.occurred_at, r.data])
                continue
            order = orders[r.order_id]
            order.reply(r.reply)
            recorded = order.pull_events()
            notes = [e.note for e in recorded if isinstance(e, domain.ReplyNoted)]
            data = {**r.data, **({"note": "; ".join(notes)} if notes else {})}
            timeline.append([r.order_id, str(r.event_id), r.type_, r.source, r.occurred_at, data])
            if any(isinstance(e, domain.StatusChanged | domain.Cancelled) for e in recorded):
                moved.add(r.order_id)
            for event in recorded:
                published = _integration_event(order, event)
                if published is None:
                    continue
                event_type, payload = published
                entries.append(outbox.Entry(event_type, str(order.id), payload, r.trace))
                row = [order.id, None, event_type.name, "orders", now, _timeline_data(payload)]
                own.append(row)
                timeline.append(row)
        statuses = [
            (o.id, o.status.value, o.stock_status.value, o.payment_status.value, o.cancellation_reason)
            for o in (orders[order_id] for order_id in sorted(moved))
        ]
        # Four writes nothing reads back, in one round trip: a batch here is mostly a reply or two,
        # and four one-row writes and a commit cost 2.3 ms one after the other, 1.5 ms pipelined.
        with bulk.pipelined(DB):
            for row, event_id in zip(own, outbox.record_many(entries=entries), strict=True):
                row[1] = str(event_id)
            saga_store.update_statuses(rows=statuses, now=now, views=False)
            saga_store.update_statuses(rows=statuses, now=now, views=True)
            saga_store.insert_timeline(rows=timeline, now=now)


def _change(order_id: uuid.UUID, command: Callable[[domain.Order], None]) -> Order:
    """Load and lock the order, run one domain command on it, persist what it recorded."""
    with unit_of_work(DB):
        row = _locked(order_id)
        order = row.to_domain()
        command(order)
        _commit(order, save=row)
    return row


def order_cancel(*, order_id: uuid.UUID, reason: str) -> Order:
    return _change(order_id, lambda order: order.cancel(reason))


def order_ship(*, order_id: uuid.UUID) -> Order:
    return _change(order_id, domain.Order.ship)


def order_deliver(*, order_id: uuid.UUID) -> Order:
    return _change(order_id, domain.Order.deliver)


def orders_expire(*, now: datetime | None = None, limit: int = 200) -> int:
    """Cancel PENDING orders older than the deadline (reason `timeout`). Returns how many.

    Rows locked by a concurrent reply are skipped; the next run picks them up if still PENDING.
    """
    cutoff = (now or timezone.now()) - settings.ORDERS_PENDING_DEADLINE
    expired = 0
    with unit_of_work(DB):
        rows = (
            Order.objects.using(DB)
            .select_for_update(skip_locked=True)
            .filter(status=domain.OrderStatus.PENDING, created_at__lt=cutoff)
            .order_by("created_at")[:limit]
        )
        for row in rows:
            order = row.to_domain()
            if order.expire():
                _commit(order, save=row)
                expired += 1
    return expired


def timeline_note(
    *, order_id: uuid.UUID, event_id: str, type_: str, source: str, occurred_at: datetime, data: dict
) -> None:
    """An event that belongs on the order's timeline but changes nothing (e.g. NotificationSent)."""
    with unit_of_work(DB):
        timeline_record(
            order_id=order_id, event_id=event_id, type_=type_, source=source, occurred_at=occurred_at, data=data
        )


# -- replicas -----------------------------------------------------------------------------------------
def _replicate(model, lookup: dict, changes: dict, occurred_at: datetime | None) -> bool:
    """Apply one source event to a replica row unless a newer event was applied already.

    Events of one aggregate arrive in order on their partition; a stale one can still come from a
    replay or a dead letter re-sent late, and must not undo newer facts. Returns whether applied.
    """
    with unit_of_work(DB):
        row = model.objects.using(DB).select_for_update().filter(**lookup).first()
        if row is not None and occurred_at and row.source_time and occurred_at < row.source_time:
            return False
        values = {**changes, **({"source_time": occurred_at} if occurred_at else {})}
        if row is None:
            model.objects.using(DB).create(**lookup, **values)
        else:
            model.objects.using(DB).filter(**lookup).update(**values, updated_at=timezone.now())
        return True


def product_price_upsert(
    *, sku: str, price: Money, active: bool | None = None, occurred_at: datetime | None = None
) -> bool:
    changes: dict = {"price_amount": price.amount, "price_currency": price.currency}
    if active is not None:
        changes["active"] = active
    return _replicate(ProductPrice, {"sku": sku}, changes, occurred_at)


def product_discontinue(*, sku: str, occurred_at: datetime | None = None) -> bool:
    if not ProductPrice.objects.using(DB).filter(sku=sku).exists():
        return False  # never seen (or purged): nothing to discontinue, orders refuse unknown skus anyway
    return _replicate(ProductPrice, {"sku": sku}, {"active": False}, occurred_at)


def customer_status_set(
    *, customer_id: uuid.UUID, active: bool | None = None, email: str | None = None, occurred_at: datetime | None = None
) -> bool:
    """Upsert the customer replica; only the given fields change (events carry one fact each)."""
    changes = {k: v for k, v in (("active", active), ("email", email)) if v is not None}
    return _replicate(CustomerStatus, {"customer_id": customer_id}, changes, occurred_at)

"""Use cases of the orders context; each is one transaction on the orders database."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

import contracts.orders as events
from contexts.orders import domain
from contexts.orders.models import CustomerStatus, IdempotencyKey, Order, OrderLine, ProductPrice, TimelineEntry
from orderflow.domain import DomainError, Money
from orderflow.messaging import outbox

DB = "orders"


class IdempotencyMismatch(DomainError):
    code = "idempotency_key_reused"


class CustomerInactive(DomainError):
    code = "customer_inactive"


def timeline_record(
    *, order_id: uuid.UUID, event_id: str, type_: str, source: str, occurred_at: datetime, data: dict
) -> None:
    TimelineEntry.objects.using(DB).get_or_create(
        order_id=order_id,
        event_id=str(event_id),
        type=type_,
        defaults={"source": source, "occurred_at": occurred_at, "data": data},
    )


def _request_hash(lines: list[dict], card_token: str) -> str:
    canonical = json.dumps(
        {"lines": [{"sku": ln["sku"], "quantity": ln["quantity"]} for ln in lines], "card_token": card_token},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replayed(customer_id: uuid.UUID, key: str, request_hash: str) -> Order | None:
    record = IdempotencyKey.objects.using(DB).select_related("order").filter(customer_id=customer_id, key=key).first()
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request body")
    return record.order


def order_place(
    *, customer_id: uuid.UUID, lines: list[dict], card_token: str = "tok_visa", idempotency_key: str | None = None
) -> tuple[Order, bool]:
    """Place an order (PENDING) and publish OrderPlaced. Returns (order, created).

    With an idempotency key, the same key and body return the first order (created=False).
    """
    request_hash = _request_hash(lines, card_token)
    if idempotency_key and (existing := _replayed(customer_id, idempotency_key, request_hash)):
        return existing, False
    try:
        with transaction.atomic(using=DB):
            status = CustomerStatus.objects.using(DB).filter(customer_id=customer_id).first()
            if status is not None and not status.active:
                raise CustomerInactive("this customer account is deactivated")
            skus = {line["sku"] for line in lines}
            quotes = {p.sku: p.to_quote() for p in ProductPrice.objects.using(DB).filter(sku__in=skus)}
            order = domain.Order.place(
                customer_id=customer_id,
                quotes=quotes,
                card_token=card_token,
                lines=[(line["sku"], line["quantity"]) for line in lines],
            )
            row = Order(
                id=order.id, customer_id=customer_id, total_amount=order.total.amount, currency=order.total.currency
            )
            row.update_from_domain(order)
            row.save(using=DB, force_insert=True)
            OrderLine.objects.using(DB).bulk_create(
                [
                    OrderLine(
                        order=row,
                        position=i,
                        sku=line.sku,
                        quantity=line.quantity,
                        unit_price_amount=line.unit_price.amount,
                    )
                    for i, line in enumerate(order.lines)
                ]
            )
            if idempotency_key:
                IdempotencyKey.objects.using(DB).create(
                    customer_id=customer_id, key=idempotency_key, request_hash=request_hash, order=row
                )
            _publish(order)
    except IntegrityError:
        # A concurrent request with the same idempotency key committed first: answer with its order.
        if idempotency_key and (existing := _replayed(customer_id, idempotency_key, request_hash)):
            return existing, False
        raise
    return row, True


def _publish(order: domain.Order) -> None:
    for event in order.pull_events():
        if isinstance(event, domain.Placed):
            data = {
                "order_id": str(event.order_id),
                "customer_id": str(event.customer_id),
                "lines": [
                    {"sku": ln.sku, "quantity": ln.quantity, "unit_price": ln.unit_price.to_dict()}
                    for ln in event.lines
                ],
                "total": event.total.to_dict(),
                "card_token": event.card_token,
            }
            event_id = outbox.record(event_type=events.OrderPlaced, aggregate_id=str(event.order_id), data=data)
            timeline_record(
                order_id=event.order_id,
                event_id=str(event_id),
                type_="OrderPlaced",
                source="orders",
                occurred_at=timezone.now(),
                data={k: v for k, v in data.items() if k != "card_token"},
            )
        elif isinstance(event, domain.ReplyIgnored):
            pass  # the reply itself is on the timeline with the note (see stock_reply)


def stock_reply(
    *, order_id: uuid.UUID, reserved: bool, event_id: str, type_: str, source: str, occurred_at: datetime, data: dict
) -> None:
    """Inventory answered OrderPlaced: record it on the timeline and move the saga."""
    with transaction.atomic(using=DB):
        row = Order.objects.using(DB).select_for_update().filter(id=order_id).first()
        if row is None:
            # Inventory only answers orders we published, so the order exists; a reply for an
            # unknown order means a foreign or corrupted event: fail loudly (dead-letter).
            raise LookupError(f"no order {order_id}")
        order = row.to_domain()
        order.stock_reserved() if reserved else order.stock_rejected()
        notes = [e.reason for e in order.pull_events() if isinstance(e, domain.ReplyIgnored)]
        row.update_from_domain(order)
        row.save(using=DB)
        timeline_record(
            order_id=order_id,
            event_id=event_id,
            type_=type_,
            source=source,
            occurred_at=occurred_at,
            data={**data, **({"ignored": notes[0]} if notes else {})},
        )


def product_price_upsert(*, sku: str, price: Money, active: bool | None = None) -> None:
    defaults: dict = {"price_amount": price.amount, "price_currency": price.currency}
    if active is not None:
        defaults["active"] = active
    ProductPrice.objects.using(DB).update_or_create(sku=sku, defaults=defaults)


def product_discontinue(*, sku: str) -> None:
    ProductPrice.objects.using(DB).filter(sku=sku).update(active=False, updated_at=timezone.now())


def customer_status_set(*, customer_id: uuid.UUID, active: bool) -> None:
    CustomerStatus.objects.using(DB).update_or_create(customer_id=customer_id, defaults={"active": active})

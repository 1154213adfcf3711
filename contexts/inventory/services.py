"""Use cases of the inventory context; each is one transaction on the inventory database."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import transaction

import contracts.inventory as events
from contexts.inventory import domain
from contexts.inventory.models import Reservation, StockAdjustment, StockItem
from orderflow.messaging import outbox

DB = "inventory"


def _locked(skus: list[str]):
    """Stock rows locked in sku order, so concurrent reservations never deadlock."""
    return StockItem.objects.using(DB).select_for_update().filter(sku__in=skus).order_by("sku")


def stock_item_ensure(*, sku: str) -> StockItem:
    """A sku the catalog added gets a stock row (0 on hand) if it has none."""
    item, _ = StockItem.objects.using(DB).get_or_create(sku=sku)
    return item


def stock_adjust(*, sku: str, delta: int, reason: str, adjusted_by: str = "") -> StockItem:
    with transaction.atomic(using=DB):
        row = _locked([sku]).get()
        item = row.to_domain()
        item.adjust(delta)
        row.update_from_domain(item)
        row.save(using=DB, update_fields=["on_hand", "updated_at"])
        StockAdjustment.objects.using(DB).create(
            sku=sku, delta=delta, reason=reason, on_hand_after=row.on_hand, adjusted_by=adjusted_by
        )
    return row


def order_reserve(*, order_id: uuid.UUID, lines: list[dict]) -> Reservation:
    """Reserve an order's lines all-or-nothing; publish StockReserved or StockReservationFailed.

    Idempotent per order: a second request for the same order returns the first outcome.
    """
    with transaction.atomic(using=DB):
        existing = Reservation.objects.using(DB).filter(order_id=order_id).first()
        if existing is not None:
            return existing
        wanted = [domain.Line(line["sku"], int(line["quantity"])) for line in lines]
        rows = {row.sku: row for row in _locked(sorted({line.sku for line in wanted}))}
        stock = {sku: row.to_domain() for sku, row in rows.items()}
        outcome = domain.reserve(order_id, wanted, stock)
        if outcome.reserved:
            for sku, row in rows.items():
                row.update_from_domain(stock[sku])
                row.save(using=DB, update_fields=["reserved", "updated_at"])
            outbox.record(
                event_type=events.StockReserved,
                aggregate_id=str(order_id),
                data={
                    "order_id": str(order_id),
                    "lines": _lines_payload(outcome.lines),
                },
            )
        else:
            unknown = any(s.sku not in rows for s in outcome.shortages)
            outbox.record(
                event_type=events.StockReservationFailed,
                aggregate_id=str(order_id),
                data={
                    "order_id": str(order_id),
                    "reason": "unknown_sku" if unknown else "out_of_stock",
                    "lines": [
                        {"sku": s.sku, "requested": s.requested, "available": s.available} for s in outcome.shortages
                    ],
                },
            )
        return Reservation.objects.using(DB).create(
            order_id=order_id,
            status=Reservation.Status.RESERVED if outcome.reserved else Reservation.Status.REJECTED,
            lines=_lines_payload(outcome.lines),
        )


def _reservation_locked(order_id: uuid.UUID) -> Reservation | None:
    return Reservation.objects.using(DB).select_for_update().filter(order_id=order_id).first()


def _apply_to_stock(reservation: Reservation, change) -> list[domain.Line]:
    """Lock the reservation's stock rows, apply `change(lines, stock)` and save them."""
    lines = [domain.Line(line["sku"], int(line["quantity"])) for line in reservation.lines]
    rows = {row.sku: row for row in _locked(sorted({line.sku for line in lines}))}
    stock = {sku: row.to_domain() for sku, row in rows.items()}
    change(lines, stock)
    for sku, row in rows.items():
        row.update_from_domain(stock[sku])
        row.save(using=DB, update_fields=["on_hand", "reserved", "updated_at"])
    return lines


def _lines_payload(lines: Iterable[domain.Line]) -> list[dict]:
    return [{"sku": line.sku, "quantity": line.quantity} for line in lines]


def order_commit(*, order_id: uuid.UUID) -> Reservation | None:
    """OrderConfirmed: the reserved units are sold. Only a RESERVED reservation commits."""
    with transaction.atomic(using=DB):
        reservation = _reservation_locked(order_id)
        if reservation is None or reservation.status != Reservation.Status.RESERVED:
            return reservation
        lines = _apply_to_stock(reservation, domain.commit)
        reservation.status = Reservation.Status.COMMITTED
        reservation.save(using=DB, update_fields=["status", "updated_at"])
        outbox.record(
            event_type=events.StockCommitted,
            aggregate_id=str(order_id),
            data={"order_id": str(order_id), "lines": _lines_payload(lines)},
        )
        return reservation


def order_release(*, order_id: uuid.UUID) -> Reservation | None:
    """OrderCancelled: release a reservation, or restock committed units. A rejected (or already
    released) reservation has nothing to give back."""
    with transaction.atomic(using=DB):
        reservation = _reservation_locked(order_id)
        if reservation is None or reservation.status not in (Reservation.Status.RESERVED, Reservation.Status.COMMITTED):
            return reservation
        committed = reservation.status == Reservation.Status.COMMITTED
        lines = _apply_to_stock(reservation, lambda ls, stock: domain.release(ls, stock, committed=committed))
        reservation.status = Reservation.Status.RELEASED
        reservation.save(using=DB, update_fields=["status", "updated_at"])
        outbox.record(
            event_type=events.StockReleased,
            aggregate_id=str(order_id),
            data={"order_id": str(order_id), "lines": _lines_payload(lines), "restocked": committed},
        )
        return reservation

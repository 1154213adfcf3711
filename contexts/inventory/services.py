"""Use cases of the inventory context; each is one transaction on the inventory database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from django.db import connections
from django.utils import timezone

import contracts.inventory as events
from contexts.inventory import domain
from contexts.inventory.models import Reservation, StockAdjustment, StockItem
from contracts import EventType
from orderflow.messaging import bulk, outbox
from orderflow.messaging.bulk import json_rows
from orderflow.tracing import TraceContext
from orderflow.unit_of_work import unit_of_work

DB = "inventory"


def _locked(skus: list[str]):
    """Stock rows locked in sku order, so concurrent reservations never deadlock."""
    return StockItem.objects.using(DB).select_for_update().filter(sku__in=skus).order_by("sku")


def stock_item_ensure(*, sku: str) -> StockItem:
    """A sku the catalog added gets a stock row (0 on hand) if it has none."""
    item, _ = StockItem.objects.using(DB).get_or_create(sku=sku)
    return item


def stock_adjust(*, sku: str, delta: int, reason: str, adjusted_by: str = "") -> StockItem:
    with unit_of_work(DB):
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
    with unit_of_work(DB):
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
        event_type, data = _reservation_reply(outcome, known=rows)
        outbox.record(event_type=event_type, aggregate_id=str(order_id), data=data)
        return Reservation.objects.using(DB).create(
            order_id=order_id, status=_reservation_status(outcome), lines=_lines_payload(outcome.lines)
        )


class OrderToReserve(NamedTuple):
    order_id: uuid.UUID
    lines: list[dict]
    trace: TraceContext | None = None  # the cause's trace, for the reply event's headers


def orders_reserve(*, orders: Sequence[OrderToReserve]) -> list[domain.ReservationOutcome]:
    """`order_reserve` for many orders at once, in the order given, with the same effects as
    calling it for each in turn: the same stock, reservations and reply events (one per order
    not reserved or rejected before). Returns the new outcomes, in order.

    Set-based, for a consumer's batch of OrderPlaced: one read of the existing reservations, one
    lock of every sku involved (in sku order, like `_locked`), the pure domain decision per order
    over the locked stock in memory, then one write each for stock, reservations and outbox.
    """
    with unit_of_work(DB):
        if not orders:
            return []
        connection = connections[DB]
        quote = connection.ops.quote_name
        reservations, stock_items = quote(Reservation._meta.db_table), quote(StockItem._meta.db_table)
        with bulk.PreparedCursor(DB) as cursor:
            # Batch parameters: uuids in an array literal (their text needs no quoting), rows as
            # one JSON document (see orderflow/messaging/bulk.py).
            cursor.execute(
                f"SELECT order_id FROM {reservations} WHERE order_id = ANY(%s::uuid[])",
                ["{" + ",".join(str(order.order_id) for order in orders) + "}"],
            )
            decided = {row[0] for row in cursor.fetchall()}  # an existing reservation wins
            todo = []
            for order in orders:
                if order.order_id not in decided:
                    decided.add(order.order_id)  # the same order twice in the batch: the first wins
                    todo.append((order, [domain.Line(line["sku"], int(line["quantity"])) for line in order.lines]))
            if not todo:
                return []
            skus = sorted({line.sku for _order, wanted in todo for line in wanted})
            cursor.execute(
                f"SELECT sku, on_hand, reserved FROM {stock_items} WHERE sku = ANY(%s) ORDER BY sku FOR UPDATE",
                [skus],
            )
            stock = {sku: domain.StockItem(sku, on_hand, reserved) for sku, on_hand, reserved in cursor.fetchall()}
            before = {sku: item.reserved for sku, item in stock.items()}
            outcomes, replies, rows = [], [], []
            for order, wanted in todo:
                outcome = domain.reserve(order.order_id, wanted, stock)
                outcomes.append(outcome)
                event_type, data = _reservation_reply(outcome, known=stock)
                replies.append(outbox.Entry(event_type, str(order.order_id), data, order.trace))
                rows.append((order.order_id, _reservation_status(outcome), _lines_payload(outcome.lines)))
            now = timezone.now()
            changed = [(sku, item.reserved) for sku, item in stock.items() if item.reserved != before[sku]]
            # Three writes nothing reads back: PostgreSQL runs the first two while the outbox rows
            # are built (see orderflow.messaging.bulk.pipelined).
            with bulk.pipelined(DB):
                if changed:
                    cursor.execute(  # `s.sku = ANY(…)`: through the primary key (see bulk.json_rows)
                        f"UPDATE {stock_items} AS s SET reserved = r.reserved, updated_at = %s "
                        "FROM json_to_recordset(%s::json) AS r(sku text, reserved integer) "
                        "WHERE s.sku = r.sku AND s.sku = ANY(%s)",
                        [now, json_rows(("sku", "reserved"), changed), [sku for sku, _ in changed]],
                    )
                cursor.execute(
                    f"INSERT INTO {reservations} (order_id, status, lines, created_at, updated_at) "
                    "SELECT r.order_id, r.status, r.lines, %s, %s "
                    "FROM json_to_recordset(%s::json) AS r(order_id uuid, status text, lines jsonb)",
                    [now, now, json_rows(("order_id", "status", "lines"), rows)],
                )
                outbox.record_many(entries=replies)
        return outcomes


def _reservation_status(outcome: domain.ReservationOutcome) -> str:
    return (Reservation.Status.RESERVED if outcome.reserved else Reservation.Status.REJECTED).value


def _reservation_reply(outcome: domain.ReservationOutcome, *, known) -> tuple[EventType, dict]:
    """StockReserved or StockReservationFailed for an outcome; `known` holds the skus inventory
    has a stock row for (a shortage of any other sku makes the reason `unknown_sku`)."""
    order_id = str(outcome.order_id)
    if outcome.reserved:
        return events.StockReserved, {"order_id": order_id, "lines": _lines_payload(outcome.lines)}
    unknown = any(s.sku not in known for s in outcome.shortages)
    return events.StockReservationFailed, {
        "order_id": order_id,
        "reason": "unknown_sku" if unknown else "out_of_stock",
        "lines": [{"sku": s.sku, "requested": s.requested, "available": s.available} for s in outcome.shortages],
    }


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
    with unit_of_work(DB):
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


class OrderRef(NamedTuple):
    order_id: uuid.UUID
    trace: TraceContext | None = None  # the cause's trace, for the reply event's headers


def orders_commit(*, orders: Sequence[OrderRef]) -> list[uuid.UUID]:
    """`order_commit` for many orders at once, in the order given, with the same effects as
    calling it for each in turn. Returns the orders committed now, in order."""
    return _reservations_change(
        orders,
        eligible=(Reservation.Status.RESERVED,),
        to=Reservation.Status.COMMITTED,
        change=lambda _status, lines, stock: domain.commit(lines, stock),
        reply=lambda order_id, _status, lines: (
            events.StockCommitted,
            {"order_id": order_id, "lines": _lines_payload(lines)},
        ),
    )


def orders_release(*, orders: Sequence[OrderRef]) -> list[uuid.UUID]:
    """`order_release` for many orders at once, in the order given, with the same effects as
    calling it for each in turn. Returns the orders released now, in order."""
    return _reservations_change(
        orders,
        eligible=(Reservation.Status.RESERVED, Reservation.Status.COMMITTED),
        to=Reservation.Status.RELEASED,
        change=lambda status, lines, stock: domain.release(
            lines, stock, committed=status == Reservation.Status.COMMITTED
        ),
        reply=lambda order_id, status, lines: (
            events.StockReleased,
            {
                "order_id": order_id,
                "lines": _lines_payload(lines),
                "restocked": status == Reservation.Status.COMMITTED,
            },
        ),
    )


def _reservations_change(orders: Sequence[OrderRef], *, eligible, to, change, reply) -> list[uuid.UUID]:
    """Move the reservations of `orders` that are in an `eligible` status `to` another, in order:
    `change(status, lines, stock)` applies the move to the locked stock (pure domain) and
    `reply(order_id, status, lines)` is the event it publishes. Locks like the one-by-one path
    (reservations, then their skus in sku order) with one statement each; one write each of
    stock, reservations and outbox rows."""
    with unit_of_work(DB):
        if not orders:
            return []
        connection = connections[DB]
        quote = connection.ops.quote_name
        reservations, stock_items = quote(Reservation._meta.db_table), quote(StockItem._meta.db_table)
        with bulk.PreparedCursor(DB) as cursor:
            cursor.execute(
                f"SELECT order_id, status, lines::text FROM {reservations} "
                "WHERE order_id = ANY(%s::uuid[]) ORDER BY order_id FOR UPDATE",
                ["{" + ",".join(str(order.order_id) for order in orders) + "}"],
            )
            found = {order_id: [status, json.loads(lines)] for order_id, status, lines in cursor.fetchall()}
            todo = []
            for order in orders:
                current = found.get(order.order_id)
                if current is None or current[0] not in eligible:
                    continue  # as one by one: no reservation, or nothing to do in its status
                lines = [domain.Line(line["sku"], int(line["quantity"])) for line in current[1]]
                todo.append((order, current[0], lines))
                current[0] = to  # the same order again later in the batch sees the new status
            if not todo:
                return []
            skus = sorted({line.sku for _order, _status, lines in todo for line in lines})
            cursor.execute(
                f"SELECT sku, on_hand, reserved FROM {stock_items} WHERE sku = ANY(%s) ORDER BY sku FOR UPDATE",
                [skus],
            )
            stock = {sku: domain.StockItem(sku, on_hand, reserved) for sku, on_hand, reserved in cursor.fetchall()}
            for _order, status, lines in todo:
                change(status, lines, stock)
            now = timezone.now()
            replies = []
            for order, status, lines in todo:
                event_type, data = reply(str(order.order_id), status, lines)
                replies.append(outbox.Entry(event_type, str(order.order_id), data, order.trace))
            with bulk.pipelined(DB):  # three writes nothing reads back, one round trip
                cursor.execute(
                    f"UPDATE {stock_items} AS s SET on_hand = r.on_hand, reserved = r.reserved, updated_at = %s "
                    "FROM json_to_recordset(%s::json) AS r(sku text, on_hand integer, reserved integer) "
                    "WHERE s.sku = r.sku AND s.sku = ANY(%s)",  # through the primary key (see bulk.json_rows)
                    [
                        now,
                        json_rows(
                            ("sku", "on_hand", "reserved"), [(i.sku, i.on_hand, i.reserved) for i in stock.values()]
                        ),
                        list(stock),
                    ],
                )
                cursor.execute(
                    f"UPDATE {reservations} SET status = %s, updated_at = %s WHERE order_id = ANY(%s::uuid[])",
                    [to.value, now, "{" + ",".join(str(order.order_id) for order, _status, _lines in todo) + "}"],
                )
                outbox.record_many(entries=replies)
        return [order.order_id for order, _status, _lines in todo]


def order_release(*, order_id: uuid.UUID) -> Reservation | None:
    """OrderCancelled: release a reservation, or restock committed units. A rejected (or already
    released) reservation has nothing to give back."""
    with unit_of_work(DB):
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

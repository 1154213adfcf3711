import uuid

import pytest

from contexts.orders.domain import (
    Cancelled,
    Confirmed,
    InvalidOrder,
    Order,
    OrderStateError,
    OrderStatus,
    PaymentStatus,
    Placed,
    PriceQuote,
    ReplyNoted,
    StockStatus,
)
from orderflow.domain import Money

QUOTES = {
    "A": PriceQuote("A", Money.of("2.50", "USD"), True),
    "B": PriceQuote("B", Money.of("10.00", "USD"), True),
    "OLD": PriceQuote("OLD", Money.of("1.00", "USD"), False),
    "EUR": PriceQuote("EUR", Money.of("3.00", "EUR"), True),
}


def place(lines):
    return Order.place(customer_id=uuid.uuid4(), lines=lines, quotes=QUOTES, card_token="tok_visa")


def test_place_prices_lines_from_quotes_and_records_placed():
    order = place([("A", 2), ("B", 1)])
    assert order.status is OrderStatus.PENDING and order.stock_status is StockStatus.PENDING
    assert order.total == Money.of("15.00", "USD")
    [event] = order.pull_events()
    assert isinstance(event, Placed) and event.total == order.total and event.lines == order.lines


@pytest.mark.parametrize(
    ("lines", "code", "field"),
    [
        ([], "empty_order", "lines"),
        ([("A", 0)], "invalid_quantity", "lines.0.quantity"),
        ([("A", 1), ("NOPE", 1)], "unknown_sku", "lines.1.sku"),
        ([("OLD", 1)], "inactive_sku", "lines.0.sku"),
        ([("A", 1), ("EUR", 1)], "mixed_currencies", "lines"),
    ],
)
def test_place_refuses_invalid_orders(lines, code, field):
    with pytest.raises(InvalidOrder) as error:
        place(lines)
    assert error.value.code == code and error.value.field == field


def placed(lines=(("A", 1),)):
    order = place(list(lines))
    order.pull_events()
    return order


def kinds(order):
    return [type(e).__name__ for e in order.pull_events() if type(e).__name__ != "StatusChanged"]


@pytest.mark.parametrize("first", ["stock_reserved", "payment_authorized"])
def test_confirms_when_both_participants_succeed_in_any_order(first):
    order = placed()
    order.reply(first)
    assert order.status is OrderStatus.PENDING
    order.reply("payment_authorized" if first == "stock_reserved" else "stock_reserved")
    assert order.status is OrderStatus.CONFIRMED
    assert kinds(order) == ["Confirmed"]


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        (["stock_rejected"], "out_of_stock"),
        (["payment_declined"], "payment_declined"),
        (["payment_authorized", "stock_rejected"], "out_of_stock"),
        (["stock_reserved", "payment_declined"], "payment_declined"),
    ],
)
def test_cancels_on_the_first_failure(replies, reason):
    order = placed()
    for reply in replies:
        order.reply(reply)
    assert order.status is OrderStatus.CANCELLED and order.cancellation_reason == reason
    cancelled = [e for e in order.pull_events() if isinstance(e, Cancelled)]
    assert [e.reason for e in cancelled] == [reason]


def test_late_reply_is_applied_to_its_status_but_noted_and_decides_nothing():
    order = placed()
    order.reply("stock_rejected")
    order.pull_events()
    order.reply("payment_authorized")  # late: the order is already cancelled
    assert order.status is OrderStatus.CANCELLED and order.payment_status is PaymentStatus.AUTHORIZED
    [note] = [e for e in order.pull_events() if isinstance(e, ReplyNoted)]
    assert "late reply" in note.note
    order.reply("payment_voided")  # the compensation lands
    assert order.payment_status is PaymentStatus.VOIDED


def test_duplicate_or_contradicting_replies_change_nothing():
    order = placed()
    order.reply("stock_reserved")
    order.pull_events()
    order.reply("stock_reserved")
    order.reply("stock_rejected")
    assert order.stock_status is StockStatus.RESERVED and order.status is OrderStatus.PENDING
    assert kinds(order) == ["ReplyNoted", "ReplyNoted"]


def test_customer_cancel_ship_deliver_and_expiry_rules():
    order = placed()
    order.reply("stock_reserved")
    order.reply("payment_authorized")
    order.ship()
    with pytest.raises(OrderStateError):
        order.cancel("customer_request")
    order.deliver()
    with pytest.raises(OrderStateError):
        order.ship()
    assert order.status is OrderStatus.DELIVERED and not order.expire()

    pending = placed()
    with pytest.raises(OrderStateError):
        pending.ship()
    assert pending.expire() and pending.cancellation_reason == "timeout"
    with pytest.raises(OrderStateError):
        pending.cancel("customer_request")
    assert Confirmed not in {type(e) for e in pending.pull_events()}

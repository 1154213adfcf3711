import uuid

import pytest

from contexts.orders.domain import InvalidOrder, Order, OrderStatus, Placed, PriceQuote, ReplyIgnored, StockStatus
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


def test_stock_reply_moves_once_then_is_ignored_but_noted():
    order = place([("A", 1)])
    order.pull_events()
    order.stock_reserved()
    assert order.stock_status is StockStatus.RESERVED and order.pull_events() == []
    order.stock_rejected()  # a late, contradicting reply changes nothing
    assert order.stock_status is StockStatus.RESERVED
    [note] = order.pull_events()
    assert isinstance(note, ReplyIgnored) and "RESERVED" in note.reason

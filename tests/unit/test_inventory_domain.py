import uuid

import pytest

from contexts.inventory.domain import InsufficientStock, Line, StockItem, reserve


def test_reserve_all_lines_or_none():
    stock = {"A": StockItem("A", on_hand=5), "B": StockItem("B", on_hand=1)}
    failed = reserve(uuid.uuid4(), [Line("A", 2), Line("B", 2)], stock)
    assert not failed.reserved
    assert [(s.sku, s.requested, s.available) for s in failed.shortages] == [("B", 2, 1)]
    assert stock["A"].reserved == 0 and stock["B"].reserved == 0  # nothing held back

    ok = reserve(uuid.uuid4(), [Line("A", 2), Line("B", 1)], stock)
    assert ok.reserved and stock["A"].reserved == 2 and stock["B"].available == 0


def test_reserve_merges_repeated_skus_and_reports_unknown_ones():
    stock = {"A": StockItem("A", on_hand=3)}
    outcome = reserve(uuid.uuid4(), [Line("A", 2), Line("A", 2), Line("Z", 1)], stock)
    assert {(s.sku, s.requested, s.available) for s in outcome.shortages} == {("A", 4, 3), ("Z", 1, 0)}
    assert stock["A"].reserved == 0


def test_adjust_never_goes_below_reserved():
    item = StockItem("A", on_hand=5, reserved=3)
    item.adjust(-2)
    assert item.on_hand == 3 and item.available == 0
    with pytest.raises(InsufficientStock):
        item.adjust(-1)
    assert item.on_hand == 3

"""The plain-body fast path of POST /api/orders/ (`api.plain_order_input`) must never accept what
`PlaceOrderIn` rejects, and must give exactly its validated data for what it accepts."""

from __future__ import annotations

import json

import pytest

from contexts.orders.api import PlaceOrderIn, plain_order_input

LINE = {"sku": "SKU-0001", "quantity": 2}
BODIES = [
    {"lines": [LINE]},
    {"lines": [LINE, {"sku": "SKU-0002", "quantity": 1}], "payment": {"card_token": "tok_visa"}},
    {"lines": [LINE], "payment": {}},  # the token's default
    {"lines": [{**LINE, "unit_price": "1.00"}], "extra": 1},  # unknown keys are ignored
    {"lines": [{"sku": "A" * 64, "quantity": 10_000}], "payment": {"card_token": "t" * 100}},
    {"lines": [{"sku": "a.b_c-d", "quantity": 1}]},
    # Everything below must go to the serializer (which accepts some and rejects the rest).
    {"lines": [{"sku": "A" * 65, "quantity": 1}]},
    {"lines": [{"sku": " SKU-1 ", "quantity": 1}]},  # trimmed by the serializer
    {"lines": [{"sku": "", "quantity": 1}]},
    {"lines": [{"sku": "SKU\x00", "quantity": 1}]},
    {"lines": [{"sku": 12, "quantity": 1}]},
    {"lines": [{"sku": None, "quantity": 1}]},
    {"lines": [{"sku": "SKU-1", "quantity": "2"}]},  # a numeric string the serializer converts
    {"lines": [{"sku": "SKU-1", "quantity": 2.0}]},
    {"lines": [{"sku": "SKU-1", "quantity": True}]},
    {"lines": [{"sku": "SKU-1", "quantity": 0}]},
    {"lines": [{"sku": "SKU-1", "quantity": 10_001}]},
    {"lines": [{"sku": "SKU-1"}]},
    {"lines": [{"quantity": 1}]},
    {"lines": []},
    {"lines": {"sku": "SKU-1", "quantity": 1}},
    {"lines": ["SKU-1"]},
    {"lines": None},
    {},
    {"lines": [LINE], "payment": None},
    {"lines": [LINE], "payment": "tok_visa"},
    {"lines": [LINE], "payment": {"card_token": ""}},
    {"lines": [LINE], "payment": {"card_token": " tok_visa"}},
    {"lines": [LINE], "payment": {"card_token": "t" * 101}},
    {"lines": [LINE], "payment": {"card_token": None}},
    [LINE],
    "lines",
]


def plain(value):
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("body", BODIES, ids=[json.dumps(b)[:60] for b in BODIES])
def test_the_fast_path_accepts_only_what_the_serializer_accepts_and_gives_the_same_data(body):
    fast = plain_order_input(body)
    serializer = PlaceOrderIn(data=body)
    if fast is None:
        return  # the view validates with the serializer, as before
    assert serializer.is_valid(), serializer.errors
    assert fast == plain(serializer.validated_data)


def test_plain_bodies_take_the_fast_path():
    taken = [b for b in BODIES if plain_order_input(b) is not None]
    assert taken == BODIES[:6]

import uuid

import pytest

import contracts.notifications as contract
from contexts.notifications.domain import (
    Delivery,
    Kind,
    Recipient,
    delivery_for,
    describe_reason,
    format_money,
    order_reference,
    subject_for,
)

ORDER = uuid.UUID("9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f")


def test_kinds_are_the_contracts_kinds():
    assert [k.value for k in Kind] == contract.NOTIFICATION_KINDS


@pytest.mark.parametrize("kind", list(Kind))
def test_a_notification_waits_while_the_address_is_unknown(kind):
    assert delivery_for(kind, None) is Delivery.WAIT
    assert delivery_for(kind, Recipient(email="")) is Delivery.WAIT  # a placeholder contact
    assert delivery_for(kind, Recipient(email="", active=False)) is Delivery.WAIT


@pytest.mark.parametrize("kind", list(Kind))
def test_an_active_customer_gets_every_kind(kind):
    assert delivery_for(kind, Recipient(email="ada@example.com")) is Delivery.SEND


def test_a_deactivated_customer_only_hears_about_cancellations():
    gone = Recipient(email="ada@example.com", active=False)
    assert delivery_for(Kind.ORDER_CANCELLED, gone) is Delivery.SEND
    for kind in (Kind.ORDER_CONFIRMED, Kind.ORDER_SHIPPED, Kind.ORDER_DELIVERED):
        assert delivery_for(kind, gone) is Delivery.WITHHOLD


def test_subjects_name_the_short_order_reference():
    assert order_reference(ORDER) == "9C1D2E3F"
    assert subject_for(Kind.ORDER_CONFIRMED, ORDER) == "Your order 9C1D2E3F is confirmed"
    assert subject_for(Kind.ORDER_CANCELLED, ORDER) == "Your order 9C1D2E3F was cancelled"
    assert all(order_reference(ORDER) in subject_for(kind, ORDER) for kind in Kind)


def test_saga_reasons_are_put_in_words_and_staff_text_is_kept():
    assert describe_reason("payment_declined") == "the payment was declined"
    assert describe_reason("out_of_stock") == "some items are out of stock"
    assert describe_reason("timeout") == "we could not complete it in time"
    assert describe_reason("customer_request") == "you asked us to cancel it"
    assert (
        describe_reason("  damaged in the warehouse & not replaceable ") == "damaged in the warehouse & not replaceable"
    )


def test_money_reads_as_amount_and_currency():
    assert format_money({"amount": "19.99", "currency": "USD"}) == "19.99 USD"

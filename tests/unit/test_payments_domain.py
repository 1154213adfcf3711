import uuid
from decimal import Decimal

import pytest

from contexts.payments.domain import (
    AuthorizationResult,
    Authorized,
    Captured,
    Declined,
    DeclineReason,
    IllegalTransition,
    Payment,
    PaymentStatus,
    Refunded,
    Voided,
    payment_id_for,
)
from contexts.payments.gateway import FakeGateway, get_gateway
from orderflow.domain import DomainError, Money

USD = "USD"


class RecordingGateway:
    """Approves everything and remembers each call (a Protocol needs no inheritance)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def authorize(self, *, card_token: str, amount: Money, reference: str) -> AuthorizationResult:
        self.calls.append(("authorize", reference))
        return AuthorizationResult(approved=True)

    def capture(self, *, amount: Money, reference: str) -> None:
        self.calls.append(("capture", reference))

    def void(self, *, reference: str) -> None:
        self.calls.append(("void", reference))

    def refund(self, *, amount: Money, reference: str) -> None:
        self.calls.append(("refund", reference))


def authorized(gateway: RecordingGateway) -> Payment:
    payment = Payment.authorize(
        order_id=uuid.uuid4(), amount=Money.of("10.00", USD), card_token="tok_visa", gateway=gateway
    )
    payment.pull_events()
    return payment


def test_authorize_records_authorized_with_the_payment_id_as_gateway_reference():
    gateway = RecordingGateway()
    order_id = uuid.uuid4()
    payment = Payment.authorize(order_id=order_id, amount=Money.of("10", USD), card_token="tok_visa", gateway=gateway)
    assert payment.status is PaymentStatus.AUTHORIZED and payment.decline_reason is None
    assert payment.pull_events() == [Authorized(payment.id, order_id, Money.of("10.00", USD))]
    assert gateway.calls == [("authorize", str(payment.id))]


def test_a_refused_authorization_is_a_declined_payment_with_the_reason():
    payment = Payment.authorize(
        order_id=uuid.uuid4(),
        amount=Money.of("10", USD),
        card_token="tok_insufficient_funds",
        gateway=FakeGateway("100"),
    )
    assert payment.status is PaymentStatus.DECLINED
    assert payment.decline_reason is DeclineReason.INSUFFICIENT_FUNDS
    [event] = payment.pull_events()
    assert isinstance(event, Declined) and event.reason is DeclineReason.INSUFFICIENT_FUNDS


def test_non_positive_amounts_are_refused_before_the_gateway():
    gateway = RecordingGateway()
    with pytest.raises(DomainError) as error:
        Payment.authorize(order_id=uuid.uuid4(), amount=Money.of("0", USD), card_token="tok_visa", gateway=gateway)
    assert error.value.code == "invalid_amount" and gateway.calls == []


def test_capture_then_refund():
    gateway = RecordingGateway()
    payment = authorized(gateway)
    payment.capture(gateway)
    payment.refund(gateway)
    assert payment.status is PaymentStatus.REFUNDED
    assert [type(e) for e in payment.pull_events()] == [Captured, Refunded]
    assert [call for call, _ in gateway.calls] == ["authorize", "capture", "refund"]


def test_void_releases_an_authorization():
    gateway = RecordingGateway()
    payment = authorized(gateway)
    payment.void(gateway)
    assert payment.status is PaymentStatus.VOIDED
    assert payment.pull_events() == [Voided(payment.id, payment.order_id, payment.amount)]


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (PaymentStatus.CAPTURED, "capture"),
        (PaymentStatus.CAPTURED, "void"),
        (PaymentStatus.AUTHORIZED, "refund"),
        (PaymentStatus.DECLINED, "capture"),
        (PaymentStatus.DECLINED, "void"),
        (PaymentStatus.VOIDED, "capture"),
        (PaymentStatus.VOIDED, "refund"),
        (PaymentStatus.REFUNDED, "refund"),
    ],
)
def test_illegal_transitions_raise_and_never_reach_the_gateway(status, action):
    gateway = RecordingGateway()
    payment = Payment(id=uuid.uuid4(), order_id=uuid.uuid4(), amount=Money.of("5", USD), status=status)
    with pytest.raises(IllegalTransition):
        getattr(payment, action)(gateway)
    assert payment.status is status and payment.events == [] and gateway.calls == []


@pytest.mark.parametrize(
    ("status", "after", "calls"),
    [
        (PaymentStatus.AUTHORIZED, PaymentStatus.VOIDED, ["void"]),
        (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED, ["refund"]),
        (PaymentStatus.DECLINED, PaymentStatus.DECLINED, []),
        (PaymentStatus.VOIDED, PaymentStatus.VOIDED, []),
        (PaymentStatus.REFUNDED, PaymentStatus.REFUNDED, []),
    ],
)
def test_compensate_voids_or_refunds_and_leaves_final_states_alone(status, after, calls):
    gateway = RecordingGateway()
    payment = Payment(id=uuid.uuid4(), order_id=uuid.uuid4(), amount=Money.of("5", USD), status=status)
    payment.compensate(gateway)
    assert payment.status is after and [c for c, _ in gateway.calls] == calls
    assert len(payment.pull_events()) == len(calls)


@pytest.mark.parametrize(
    ("token", "amount", "reason"),
    [
        ("tok_visa", "100.00", None),
        ("tok_declined", "1.00", DeclineReason.CARD_DECLINED),
        ("tok_insufficient_funds", "1.00", DeclineReason.INSUFFICIENT_FUNDS),
        ("tok_unknown", "1.00", DeclineReason.CARD_DECLINED),
        ("tok_visa", "100.01", DeclineReason.OVER_LIMIT),
        ("tok_declined", "100.01", DeclineReason.OVER_LIMIT),  # the limit is checked first
    ],
)
def test_fake_gateway_test_tokens_and_limit(token, amount, reason):
    result = FakeGateway(single_payment_limit="100.00").authorize(
        card_token=token, amount=Money.of(amount, USD), reference="ref"
    )
    assert result == AuthorizationResult(approved=reason is None, decline_reason=reason)


def test_the_configured_gateway_and_limit_come_from_settings(settings):
    settings.PAYMENTS_SINGLE_PAYMENT_LIMIT = "20.00"
    gateway = get_gateway()
    assert isinstance(gateway, FakeGateway) and gateway.single_payment_limit == Decimal("20.00")
    assert gateway.authorize(card_token="tok_visa", amount=Money.of("20.01", USD), reference="r").decline_reason == (
        DeclineReason.OVER_LIMIT
    )


def test_an_orders_payment_id_and_gateway_reference_are_the_same_on_every_attempt():
    class Recording:
        def __init__(self) -> None:
            self.references: list[str] = []

        def authorize(self, *, card_token, amount, reference):
            self.references.append(reference)
            return AuthorizationResult(approved=True, decline_reason=None)

    order_id, other = uuid.uuid4(), uuid.uuid4()
    gateway = Recording()
    first = Payment.authorize(order_id=order_id, amount=Money.of("5.00", "USD"), card_token="tok_visa", gateway=gateway)
    again = Payment.authorize(order_id=order_id, amount=Money.of("5.00", "USD"), card_token="tok_visa", gateway=gateway)
    declined = Payment.decline(order_id=other, amount=Money.of("5.00", "USD"), reason=DeclineReason.CARD_DECLINED)
    assert first.id == again.id == payment_id_for(order_id) != payment_id_for(other) == declined.id
    assert gateway.references == [str(first.id), str(first.id)]

"""The payments context on the real databases and broker: the saga's payment steps and the API."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from drf_spectacular.generators import SchemaGenerator

from contexts.payments import services, urls
from contexts.payments.domain import PaymentStatus
from contexts.payments.models import InboxEvent, OutboxEvent, Payment
from orderflow.domain import Money
from orderflow.messaging.consumer import ContextConsumer
from orderflow.messaging.envelope import Envelope
from orderflow.messaging.kafka import topic_name
from tests.fixtures.gateway import install
from tests.fixtures.kafka import produce

pytestmark = pytest.mark.django_db(databases="__all__")

PROBLEM = "application/problem+json"
DB = "payments"


@pytest.fixture
def gateway(settings):
    return install(settings)


def authorize(
    order_id: uuid.UUID | None = None, *, amount: str = "42.50", token: str = "tok_visa", customer_id=None
) -> Payment:
    return services.payment_authorize(
        order_id=order_id or uuid.uuid4(),
        customer_id=customer_id or uuid.uuid4(),
        amount=Money.of(amount, "USD"),
        card_token=token,
    )


def outbox(payment: Payment) -> list[tuple[str, dict]]:
    rows = OutboxEvent.objects.using(DB).filter(aggregateid=str(payment.id)).order_by("position")
    return [(row.type.split(".")[2], row.payload) for row in rows]


def ref(payment: Payment, **extra) -> dict:
    return {
        "payment_id": str(payment.id),
        "order_id": str(payment.order_id),
        "amount": {"amount": str(payment.amount), "currency": payment.currency},
        **extra,
    }


# -- services ------------------------------------------------------------------------------------
def test_authorize_once_per_order_even_when_asked_twice(gateway):
    order_id = uuid.uuid4()
    first = authorize(order_id)
    again = authorize(order_id, token="tok_declined")
    assert again.id == first.id and again.status == PaymentStatus.AUTHORIZED
    assert Payment.objects.using(DB).filter(order_id=order_id).count() == 1
    assert gateway.calls == [("authorize", str(first.id))]
    assert outbox(first) == [("PaymentAuthorized", ref(first))]
    assert OutboxEvent.objects.using(DB).get().aggregatetype == "payment"


@pytest.mark.parametrize(
    ("token", "amount", "reason"),
    [
        ("tok_declined", "10.00", "card_declined"),
        ("tok_insufficient_funds", "10.00", "insufficient_funds"),
        ("tok_nonsense", "10.00", "card_declined"),
        ("tok_visa", "5000.01", "over_limit"),
    ],
)
def test_declines_per_token_and_over_the_limit(token, amount, reason):
    payment = authorize(token=token, amount=amount)
    payment.refresh_from_db(using=DB)
    assert (payment.status, payment.decline_reason) == ("DECLINED", reason)
    assert outbox(payment) == [("PaymentDeclined", ref(payment, reason=reason))]


def test_the_limit_is_a_setting(settings):
    settings.PAYMENTS_SINGLE_PAYMENT_LIMIT = "50.00"
    assert authorize(amount="50.00").status == PaymentStatus.AUTHORIZED
    assert authorize(amount="50.01").decline_reason == "over_limit"


def test_confirm_captures_once_then_cancel_refunds_once(gateway):
    payment = authorize()
    for _ in range(2):  # a duplicate OrderConfirmed (another event id) changes nothing
        services.payment_capture(order_id=payment.order_id)
    assert Payment.objects.using(DB).get(id=payment.id).status == "CAPTURED"
    for _ in range(2):
        services.payment_cancel(order_id=payment.order_id)
    assert Payment.objects.using(DB).get(id=payment.id).status == "REFUNDED"
    assert [call for call, _ in gateway.calls] == ["authorize", "capture", "refund"]
    assert outbox(payment) == [
        ("PaymentAuthorized", ref(payment)),
        ("PaymentCaptured", ref(payment)),
        ("PaymentRefunded", ref(payment)),
    ]


def test_cancel_voids_an_authorization_and_a_late_confirmation_captures_nothing(gateway):
    payment = authorize()
    services.payment_cancel(order_id=payment.order_id)
    services.payment_capture(order_id=payment.order_id)
    assert Payment.objects.using(DB).get(id=payment.id).status == "VOIDED"
    assert [call for call, _ in gateway.calls] == ["authorize", "void"]
    assert outbox(payment) == [("PaymentAuthorized", ref(payment)), ("PaymentVoided", ref(payment))]


def test_a_declined_payment_has_nothing_to_capture_or_compensate(gateway):
    payment = authorize(token="tok_declined")
    services.payment_capture(order_id=payment.order_id)
    services.payment_cancel(order_id=payment.order_id)
    assert Payment.objects.using(DB).get(id=payment.id).status == "DECLINED"
    assert [call for call, _ in gateway.calls] == ["authorize"]
    assert [t for t, _ in outbox(payment)] == ["PaymentDeclined"]


def test_events_for_an_order_without_payment_record_nothing(gateway):
    assert services.payment_capture(order_id=uuid.uuid4()) is None
    assert services.payment_cancel(order_id=uuid.uuid4()) is None
    assert gateway.calls == [] and not OutboxEvent.objects.using(DB).exists()


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_concurrent_authorizations_of_one_order_reach_the_gateway_once(gateway):
    gateway.hold = threading.Event()
    order_id = uuid.uuid4()
    results: list[Payment] = []

    def run() -> None:
        from django.db import connections

        try:
            results.append(authorize(order_id))
        finally:
            connections.close_all()

    first = threading.Thread(target=run)
    first.start()
    while not gateway.calls:  # the first authorization is at the gateway, holding the order lock
        threading.Event().wait(0.01)
    second = threading.Thread(target=run)
    second.start()
    second.join(0.5)
    assert second.is_alive(), "the second authorization must wait for the first"
    gateway.hold.set()
    first.join(10)
    second.join(10)
    assert len(results) == 2 and results[0].id == results[1].id
    assert len(gateway.calls) == 1 and Payment.objects.using(DB).count() == 1
    assert OutboxEvent.objects.using(DB).count() == 1


# -- the API ---------------------------------------------------------------------------------------
def test_owner_and_staff_see_the_payment_others_get_an_empty_list(api, make_customer, staff_client):
    owner, owner_client = make_customer()
    _, other_client = make_customer()
    payment = authorize(customer_id=owner.id, amount="19.99")
    expected = [
        {
            "id": str(payment.id),
            "order_id": str(payment.order_id),
            "amount": {"amount": "19.99", "currency": "USD"},
            "status": "AUTHORIZED",
        }
    ]
    url = f"/api/payments/?order={payment.order_id}"
    assert owner_client.get(url).json() == expected
    assert staff_client.get(url).json() == expected
    assert other_client.get(url).json() == []
    assert owner_client.get(f"/api/payments/?order={uuid.uuid4()}").json() == []


def test_the_api_needs_a_token_and_a_valid_order_id(api, make_customer):
    anonymous = api.get(f"/api/payments/?order={uuid.uuid4()}")
    assert anonymous.status_code == 401 and anonymous["Content-Type"] == PROBLEM

    _, client = make_customer()
    for query in ("", "?order=", "?order=not-a-uuid"):
        response = client.get(f"/api/payments/{query}")
        assert response.status_code == 400 and response["Content-Type"] == PROBLEM, query
        assert [e["field"] for e in response.json()["errors"]] == ["order"]


def test_openapi_describes_the_payments_list():
    schema = SchemaGenerator(patterns=urls.urlpatterns).get_schema(request=None, public=True)
    operation = schema["paths"]["/api/payments/"]["get"]
    assert [(p["name"], p["required"]) for p in operation["parameters"]] == [("order", True)]
    content = operation["responses"]["200"]["content"]["application/json"]
    assert content["schema"]["type"] == "array"
    [example] = content["examples"].values()
    assert [item["status"] for item in example["value"]] == ["AUTHORIZED"]


# -- through the broker ------------------------------------------------------------------------------
def order_event(name: str, order_id: uuid.UUID, customer_id: uuid.UUID, **data) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=f"orderflow.orders.{name}.v1",
        source="/orderflow/orders",
        subject=str(order_id),
        time=datetime.now(UTC),
        data={"order_id": str(order_id), "customer_id": str(customer_id), **data},
    )


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_consumer_authorizes_then_voids_on_cancel_and_ignores_a_redelivery(kafka_ns):
    order_id, customer_id = uuid.uuid4(), uuid.uuid4()
    total = {"amount": "30.00", "currency": "USD"}
    line = {"sku": "SKU-1", "quantity": 3, "unit_price": {"amount": "10.00", "currency": "USD"}}
    placed = order_event("OrderPlaced", order_id, customer_id, lines=[line], total=total, card_token="tok_visa")
    cancelled = order_event("OrderCancelled", order_id, customer_id, reason="customer_request", total=total)
    produce(
        topic_name("orders.order"),
        [(str(order_id).encode(), e.value(), e.headers()) for e in (placed, cancelled, placed)],
    )

    consumer = ContextConsumer("payments", config={"group.id": f"test-{uuid.uuid4().hex[:8]}"})
    consumer.run(idle_exit_after=3.0)

    assert (consumer.applied, consumer.skipped, consumer.dead_lettered) == (2, 1, 0)
    payment = Payment.objects.using(DB).get(order_id=order_id)
    assert (payment.status, payment.customer_id) == ("VOIDED", customer_id)
    assert outbox(payment) == [("PaymentAuthorized", ref(payment)), ("PaymentVoided", ref(payment))]
    assert InboxEvent.objects.using(DB).filter(event_id=placed.id).count() == 1
    assert OutboxEvent.objects.using(DB).get(type__endswith="PaymentVoided.v1").topic == topic_name("payments.payment")

"""HTTP entry points of the orders context."""

from __future__ import annotations

import re
import uuid

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from contexts.orders import selectors, services
from contexts.orders.domain import InvalidOrder, OrderStateError, OrderStatus, PaymentStatus, StockStatus
from contexts.orders.models import OrderView
from orderflow.api_fields import MoneyField
from orderflow.auth import IsStaff, is_staff, principal_id
from orderflow.problems import Conflict, Unprocessable


class LineIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=10_000)


class PaymentIn(serializers.Serializer):
    card_token = serializers.CharField(max_length=100, default="tok_visa")


class PlaceOrderIn(serializers.Serializer):
    lines = LineIn(many=True, allow_empty=False)
    payment = PaymentIn(required=False)


_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CARD_TOKEN = re.compile(r"[A-Za-z0-9_]{1,100}")


def plain_order_input(data: object) -> dict | None:
    """What `PlaceOrderIn` validates a plainly well-formed body to, or None to let it validate.

    The serializer is a third of placing an order's web CPU (building its fields per request),
    while nearly every real body is plain JSON that passes it. Only that is accepted here: the
    checks are stricter than the serializer's (exact types, no whitespace to trim), so whatever
    this accepts the serializer accepts with the same result, and everything else — every error
    included — goes through the serializer as before (tests/unit/test_order_input.py)."""
    if type(data) is not dict:
        return None
    lines = data.get("lines")
    if type(lines) is not list or not lines:
        return None
    valid = []
    for line in lines:
        if type(line) is not dict:
            return None
        sku, quantity = line.get("sku"), line.get("quantity")
        if type(sku) is not str or not _SKU.fullmatch(sku) or type(quantity) is not int or not 1 <= quantity <= 10_000:
            return None
        valid.append({"sku": sku, "quantity": quantity})
    out: dict = {"lines": valid}
    if "payment" in data:
        payment = data["payment"]
        if type(payment) is not dict:
            return None
        token = payment.get("card_token", "tok_visa")
        if type(token) is not str or not _CARD_TOKEN.fullmatch(token):
            return None
        out["payment"] = {"card_token": token}
    return out


class LineOut(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = MoneyField()


class OrderOut(serializers.Serializer):
    """Served from the read model (OrderView), whose JSON columns already have the API's shape."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=[s.value for s in OrderStatus])
    lines = LineOut(many=True)
    total = MoneyField()
    payment_status = serializers.ChoiceField(choices=[s.value for s in PaymentStatus])
    stock_status = serializers.ChoiceField(choices=[s.value for s in StockStatus])
    cancellation_reason = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, view):
        return {
            "id": str(view.id),
            "status": view.status,
            "lines": view.lines,
            "total": view.total,
            "payment_status": view.payment_status,
            "stock_status": view.stock_status,
            "cancellation_reason": view.cancellation_reason or None,
            "created_at": serializers.DateTimeField().to_representation(view.created_at),
            "updated_at": serializers.DateTimeField().to_representation(view.updated_at),
        }


class CancelIn(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class TimelineOut(serializers.Serializer):
    type = serializers.CharField()
    source = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    data = serializers.JSONField()


ORDER_EXAMPLE = OpenApiExample(
    "order",
    response_only=True,
    value={
        "id": "3b0c5f9e-8a1d-4c8e-9a53-2f1d0c7b6a41",
        "status": "CONFIRMED",
        "lines": [{"sku": "SKU-0001", "quantity": 2, "unit_price": {"amount": "12.50", "currency": "USD"}}],
        "total": {"amount": "25.00", "currency": "USD"},
        "payment_status": "CAPTURED",
        "stock_status": "COMMITTED",
        "cancellation_reason": None,
        "created_at": "2026-11-21T10:00:00.000000Z",
        "updated_at": "2026-11-21T10:00:00.950000Z",
    },
)
ACCEPTED_EXAMPLE = OpenApiExample(
    "accepted",
    response_only=True,
    status_codes=["202"],
    value={**ORDER_EXAMPLE.value, "status": "PENDING", "payment_status": "PENDING", "stock_status": "PENDING"},
)
TIMELINE_EXAMPLE = OpenApiExample(
    "timeline",
    response_only=True,
    value=[
        {"type": "OrderPlaced", "source": "orders", "occurred_at": "2026-11-21T10:00:00.000000Z", "data": {}},
        {"type": "StockReserved", "source": "inventory", "occurred_at": "2026-11-21T10:00:00.400000Z", "data": {}},
        {"type": "PaymentAuthorized", "source": "payments", "occurred_at": "2026-11-21T10:00:00.420000Z", "data": {}},
        {"type": "OrderConfirmed", "source": "orders", "occurred_at": "2026-11-21T10:00:00.450000Z", "data": {}},
    ],
)


def _location(request, order_id: uuid.UUID) -> str:
    return request.build_absolute_uri(reverse("order-detail", args=[order_id]))


class OrderListApi(generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = OrderOut

    def get_queryset(self):
        wanted = self.request.query_params.get("status")
        if wanted and wanted not in OrderStatus.__members__:
            raise exceptions.ValidationError({"status": [f"must be one of {', '.join(OrderStatus.__members__)}"]})
        return selectors.orders_visible(
            principal=principal_id(self.request), staff=is_staff(self.request), status=wanted
        )

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=list(OrderStatus.__members__))],
        summary="Orders: your own, or all for staff",
        examples=[ORDER_EXAMPLE],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=PlaceOrderIn,
        responses={202: OrderOut},
        summary="Place an order",
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="the same key with the same body returns the same order",
            )
        ],
        examples=[
            OpenApiExample(
                "two cups",
                request_only=True,
                value={"lines": [{"sku": "SKU-0001", "quantity": 2}], "payment": {"card_token": "tok_visa"}},
            ),
            ACCEPTED_EXAMPLE,
        ],
    )
    def post(self, request):
        validated = plain_order_input(request.data)
        if validated is None:
            data = PlaceOrderIn(data=request.data)
            data.is_valid(raise_exception=True)
            validated = data.validated_data
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and len(key) > 255:
            raise exceptions.ValidationError({"Idempotency-Key": ["at most 255 characters"]})
        try:
            view, _created = services.order_place(
                customer_id=principal_id(request),
                lines=validated["lines"],
                card_token=validated.get("payment", {}).get("card_token", "tok_visa"),
                idempotency_key=key,
            )
        except InvalidOrder as exc:
            raise exceptions.ValidationError({exc.field: [exceptions.ErrorDetail(str(exc), code=exc.code)]}) from None
        except services.IdempotencyMismatch as exc:
            raise Unprocessable(str(exc), code=exc.code) from None
        except services.CustomerInactive as exc:
            raise exceptions.PermissionDenied(str(exc)) from None
        return Response(
            OrderOut(view).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": _location(request, view.id)},
        )


class OrderDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: OrderOut}, summary="An order (owner or staff)", examples=[ORDER_EXAMPLE])
    def get(self, request, order_id: uuid.UUID):
        return Response(OrderOut(_visible_or_404(request, order_id)).data)


class OrderTimelineApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: TimelineOut(many=True)},
        summary="Every event of the order's saga, in order",
        examples=[TIMELINE_EXAMPLE],
    )
    def get(self, request, order_id: uuid.UUID):
        _visible_or_404(request, order_id)
        return Response(TimelineOut(selectors.order_timeline(order_id=order_id), many=True).data)


def _view(order_id: uuid.UUID) -> OrderView:
    return OrderView.objects.using(services.DB).get(id=order_id)


def _visible_or_404(request, order_id: uuid.UUID) -> OrderView:
    view = selectors.order_visible(order_id=order_id, principal=principal_id(request), staff=is_staff(request))
    if view is None:
        raise exceptions.NotFound("No such order.")
    return view


class OrderCancelApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=CancelIn,
        responses={202: OrderOut},
        summary="Cancel an order (owner or staff); stock and payment compensations follow",
        examples=[
            OpenApiExample("changed my mind", request_only=True, value={"reason": "ordered twice"}),
            OpenApiExample(
                "cancelled",
                response_only=True,
                status_codes=["202"],
                value={**ORDER_EXAMPLE.value, "status": "CANCELLED", "cancellation_reason": "customer_request"},
            ),
        ],
    )
    def post(self, request, order_id: uuid.UUID):
        _visible_or_404(request, order_id)
        data = CancelIn(data=request.data)
        data.is_valid(raise_exception=True)
        # A customer's cancellation is `customer_request`; staff may give their own reason.
        reason = (data.validated_data.get("reason") or "").strip() if is_staff(request) else ""
        try:
            services.order_cancel(order_id=order_id, reason=reason or "customer_request")
        except OrderStateError as exc:
            raise Conflict(str(exc), code=exc.code) from None
        return Response(OrderOut(_view(order_id)).data, status=status.HTTP_202_ACCEPTED)


def _staff_transition(name: str, service, summary: str):
    class TransitionApi(APIView):
        permission_classes = [IsStaff]

        @extend_schema(request=None, responses={200: OrderOut}, summary=summary, examples=[ORDER_EXAMPLE])
        def post(self, request, order_id: uuid.UUID):
            if not OrderView.objects.using(services.DB).filter(id=order_id).exists():
                raise exceptions.NotFound("No such order.")
            try:
                service(order_id=order_id)
            except OrderStateError as exc:
                raise Conflict(str(exc), code=exc.code) from None
            return Response(OrderOut(_view(order_id)).data)

    TransitionApi.__name__ = TransitionApi.__qualname__ = name
    return TransitionApi


OrderShipApi = _staff_transition("OrderShipApi", services.order_ship, "Ship a CONFIRMED order (staff)")
OrderDeliverApi = _staff_transition("OrderDeliverApi", services.order_deliver, "Mark a SHIPPED order delivered (staff)")

"""HTTP entry points of the orders context."""

from __future__ import annotations

import uuid

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from contexts.orders import selectors, services
from contexts.orders.domain import InvalidOrder, OrderStatus
from orderflow.auth import is_staff, principal_id
from orderflow.problems import Unprocessable


class LineIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=10_000)


class PaymentIn(serializers.Serializer):
    card_token = serializers.CharField(max_length=100, default="tok_visa")


class PlaceOrderIn(serializers.Serializer):
    lines = LineIn(many=True, allow_empty=False)
    payment = PaymentIn(required=False)


class MoneyOut(serializers.Serializer):
    amount = serializers.CharField()
    currency = serializers.CharField()


class LineOut(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.SerializerMethodField()

    def get_unit_price(self, line) -> dict:
        return {"amount": str(line.unit_price_amount), "currency": line.order.currency}


class OrderOut(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    lines = LineOut(many=True, source="lines.all")
    total = serializers.SerializerMethodField()
    payment_status = serializers.CharField()
    stock_status = serializers.CharField()
    cancellation_reason = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_total(self, order) -> dict:
        return order.total.to_dict()

    def get_cancellation_reason(self, order) -> str | None:
        return order.cancellation_reason or None


class TimelineOut(serializers.Serializer):
    type = serializers.CharField()
    source = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    data = serializers.JSONField()


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
            )
        ],
    )
    def post(self, request):
        data = PlaceOrderIn(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and len(key) > 255:
            raise exceptions.ValidationError({"Idempotency-Key": ["at most 255 characters"]})
        try:
            order, _created = services.order_place(
                customer_id=principal_id(request),
                lines=data.validated_data["lines"],
                card_token=data.validated_data.get("payment", {}).get("card_token", "tok_visa"),
                idempotency_key=key,
            )
        except InvalidOrder as exc:
            raise exceptions.ValidationError({exc.field: [exceptions.ErrorDetail(str(exc), code=exc.code)]}) from None
        except services.IdempotencyMismatch as exc:
            raise Unprocessable(str(exc), code=exc.code) from None
        except services.CustomerInactive as exc:
            raise exceptions.PermissionDenied(str(exc)) from None
        return Response(
            OrderOut(order).data, status=status.HTTP_202_ACCEPTED, headers={"Location": _location(request, order.id)}
        )


class OrderDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: OrderOut}, summary="An order (owner or staff)")
    def get(self, request, order_id: uuid.UUID):
        order = selectors.order_visible(order_id=order_id, principal=principal_id(request), staff=is_staff(request))
        if order is None:
            raise exceptions.NotFound("No such order.")
        return Response(OrderOut(order).data)


class OrderTimelineApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: TimelineOut(many=True)}, summary="Every event of the order's saga, in order")
    def get(self, request, order_id: uuid.UUID):
        if selectors.order_visible(order_id=order_id, principal=principal_id(request), staff=is_staff(request)) is None:
            raise exceptions.NotFound("No such order.")
        return Response(TimelineOut(selectors.order_timeline(order_id=order_id), many=True).data)

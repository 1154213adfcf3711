"""HTTP entry points of the payments context."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from contexts.payments import selectors
from contexts.payments.domain import PaymentStatus
from orderflow.api_fields import MoneyField
from orderflow.auth import is_staff, principal_id


class PaymentsQuery(serializers.Serializer):
    order = serializers.UUIDField()


class PaymentOut(serializers.Serializer):
    id = serializers.UUIDField()
    order_id = serializers.UUIDField()
    amount = MoneyField(source="money")
    status = serializers.ChoiceField(choices=[s.value for s in PaymentStatus])


class PaymentListApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("order", OpenApiTypes.UUID, required=True, description="the order's id")],
        responses={200: PaymentOut(many=True)},
        summary="Payments of an order (owner or staff)",
        description="Not paginated: an order has at most one payment. Another customer's order gives [].",
        examples=[
            OpenApiExample(
                "authorized",
                response_only=True,
                # One item: drf-spectacular wraps examples of list responses in the list itself.
                value={
                    "id": "6f1c2a9e-3f57-4a2b-9a51-0d6c1b7e8f10",
                    "order_id": "0b8e4c1d-2a6f-4e3b-8c9d-1f2a3b4c5d6e",
                    "amount": {"amount": "42.50", "currency": "USD"},
                    "status": "AUTHORIZED",
                },
            )
        ],
    )
    def get(self, request):
        query = PaymentsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        payments = selectors.payments_of_order(
            order_id=query.validated_data["order"], principal=principal_id(request), staff=is_staff(request)
        )
        return Response(PaymentOut(payments, many=True).data)

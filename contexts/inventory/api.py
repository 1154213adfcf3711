"""HTTP entry points of the inventory context."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from contexts.inventory import services
from contexts.inventory.domain import InsufficientStock
from contexts.inventory.models import StockItem
from orderflow.auth import IsStaff
from orderflow.problems import Conflict


class StockOut(serializers.Serializer):
    sku = serializers.CharField()
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()


class AdjustIn(serializers.Serializer):
    delta = serializers.IntegerField(min_value=-1_000_000, max_value=1_000_000)
    reason = serializers.CharField(max_length=200)

    def validate_delta(self, value: int) -> int:
        if value == 0:
            raise serializers.ValidationError("delta must not be zero")
        return value


STOCK_EXAMPLE = OpenApiExample(
    "stock", response_only=True, value={"sku": "SKU-0001", "on_hand": 100, "reserved": 2, "available": 98}
)


def _not_found(sku: str) -> exceptions.NotFound:
    return exceptions.NotFound(f"No stock for sku {sku}.")


class StockDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: StockOut}, summary="Stock of a sku", examples=[STOCK_EXAMPLE])
    def get(self, request, sku: str):
        item = StockItem.objects.using(services.DB).filter(sku=sku).first()
        if item is None:
            raise _not_found(sku)
        return Response(StockOut(item).data)


class StockAdjustApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        request=AdjustIn,
        responses={200: StockOut},
        summary="Adjust stock (staff)",
        examples=[
            OpenApiExample("delivery", request_only=True, value={"delta": 50, "reason": "delivery"}),
            STOCK_EXAMPLE,
        ],
    )
    def post(self, request, sku: str):
        data = AdjustIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            item = services.stock_adjust(sku=sku, adjusted_by=str(request.user.id), **data.validated_data)
        except StockItem.DoesNotExist:
            raise _not_found(sku) from None
        except InsufficientStock as exc:
            raise Conflict(str(exc), code="insufficient_stock") from None
        return Response(StockOut(item).data)

"""HTTP entry points of the catalog context."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from contexts.catalog import selectors, services
from contexts.catalog.models import Product
from orderflow.api_fields import MoneyField
from orderflow.auth import IsStaff
from orderflow.problems import Conflict


class ProductOut(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    price = MoneyField()
    active = serializers.BooleanField()


class ProductIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, default="")
    price = MoneyField(default_currency="USD")


class ProductPatch(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    price = MoneyField(default_currency=None, required=False)
    active = serializers.BooleanField(required=False)


PRODUCT_EXAMPLE = OpenApiExample(
    "product",
    response_only=True,
    value={
        "sku": "SKU-0001",
        "name": "Espresso cup",
        "description": "Porcelain espresso cup, 90 ml",
        "price": {"amount": "12.50", "currency": "USD"},
        "active": True,
    },
)


class ProductListApi(generics.ListAPIView):
    serializer_class = ProductOut

    def get_permissions(self):
        return [IsStaff()] if self.request.method == "POST" else [AllowAny()]

    def get_queryset(self):
        return selectors.product_list(search=self.request.query_params.get("search") or None)

    @extend_schema(
        parameters=[
            OpenApiParameter("search", OpenApiTypes.STR, description="full-text search over name and description")
        ],
        summary="List or search products",
        examples=[PRODUCT_EXAMPLE],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ProductIn,
        responses={201: ProductOut},
        summary="Add a product (staff)",
        examples=[
            OpenApiExample(
                "product",
                request_only=True,
                value={
                    "sku": "SKU-0100",
                    "name": "Espresso cup",
                    "description": "Porcelain, 90 ml",
                    "price": {"amount": "12.50", "currency": "USD"},
                },
            ),
            PRODUCT_EXAMPLE,
        ],
    )
    def post(self, request):
        data = ProductIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            product = services.product_add(**data.validated_data)
        except services.SkuTaken as exc:
            raise Conflict(str(exc), code="sku_taken") from None
        return Response(ProductOut(product).data, status=status.HTTP_201_CREATED)


class ProductDetailApi(APIView):
    def get_permissions(self):
        return [IsStaff()] if self.request.method == "PATCH" else [AllowAny()]

    @extend_schema(responses={200: ProductOut}, summary="A product", examples=[PRODUCT_EXAMPLE])
    def get(self, request, sku: str):
        product = Product.objects.using(services.DB).filter(sku=sku).first()
        if product is None:
            raise exceptions.NotFound(f"No product with sku {sku}.")
        return Response(ProductOut(product).data)

    @extend_schema(
        request=ProductPatch,
        responses={200: ProductOut},
        summary="Change a product (staff)",
        examples=[
            OpenApiExample("new price", request_only=True, value={"price": {"amount": "9.99", "currency": "USD"}}),
            OpenApiExample("discontinue", request_only=True, value={"active": False}),
            PRODUCT_EXAMPLE,
        ],
    )
    def patch(self, request, sku: str):
        data = ProductPatch(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            product = services.product_update(sku=sku, **data.validated_data)
        except Product.DoesNotExist:
            raise exceptions.NotFound(f"No product with sku {sku}.") from None
        return Response(ProductOut(product).data)

"""HTTP entry points of the customers context: thin views over the services."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from contexts.customers import services
from contexts.customers.models import Account
from orderflow.auth import principal_id
from orderflow.problems import Conflict


class RegisterIn(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(min_length=8, max_length=128, write_only=True, style={"input_type": "password"})
    name = serializers.CharField(max_length=200)


class CustomerOut(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()


class MeOut(CustomerOut):
    active = serializers.BooleanField()


class MePatch(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    email = serializers.EmailField(required=False)


class TokenIn(serializers.Serializer):
    email = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenOut(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RefreshIn(serializers.Serializer):
    refresh = serializers.CharField()


TOKENS_EXAMPLE = OpenApiExample(
    "tokens", response_only=True, value={"access": "eyJhbGciOiJIUzI1NiIs…", "refresh": "eyJhbGciOiJIUzI1NiIs…"}
)
ME_EXAMPLE = OpenApiExample(
    "me",
    response_only=True,
    value={"id": "6f1c1f8e-2b7a-4d51-9d55-0c8f8e3b7a10", "email": "ada@example.com", "name": "Ada", "active": True},
)


class CustomerRegisterApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        request=RegisterIn,
        responses={201: CustomerOut},
        summary="Register a customer",
        examples=[
            OpenApiExample(
                "new customer",
                value={"email": "ada@example.com", "password": "s3cret-pass", "name": "Ada"},
                request_only=True,
            ),
            OpenApiExample(
                "registered",
                response_only=True,
                value={"id": "6f1c1f8e-2b7a-4d51-9d55-0c8f8e3b7a10", "email": "ada@example.com", "name": "Ada"},
            ),
        ],
    )
    def post(self, request):
        data = RegisterIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            account = services.customer_register(**data.validated_data)
        except services.EmailTaken as exc:
            raise Conflict(str(exc), code="email_taken") from None
        return Response(CustomerOut(account).data, status=status.HTTP_201_CREATED)


class TokenObtainApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenIn,
        responses={200: TokenOut},
        summary="Obtain access and refresh JWTs",
        examples=[
            OpenApiExample(
                "credentials", request_only=True, value={"email": "ada@example.com", "password": "s3cret-pass"}
            ),
            TOKENS_EXAMPLE,
        ],
    )
    def post(self, request):
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            return Response(services.token_obtain(**data.validated_data))
        except services.InvalidCredentials:
            raise exceptions.AuthenticationFailed("No active account found with the given credentials.") from None


class TokenRefreshApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        request=RefreshIn,
        responses={200: TokenOut},
        summary="Refresh the access token (rotates the refresh token)",
        examples=[TOKENS_EXAMPLE],
    )
    def post(self, request):
        data = RefreshIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            return Response(services.token_refresh(**data.validated_data))
        except services.InvalidCredentials as exc:
            raise exceptions.AuthenticationFailed(
                str(exc) or "Token is invalid or expired.", code="token_not_valid"
            ) from None


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    def _account(self, request) -> Account:
        account = Account.objects.using(services.DB).filter(id=principal_id(request)).first()
        if account is None:
            raise exceptions.NotFound("No account for this token.")
        return account

    @extend_schema(responses={200: MeOut}, summary="The authenticated customer", examples=[ME_EXAMPLE])
    def get(self, request):
        return Response(MeOut(self._account(request)).data)

    @extend_schema(
        request=MePatch,
        responses={200: MeOut},
        summary="Change your name or email",
        examples=[
            OpenApiExample("new email", request_only=True, value={"email": "ada.lovelace@example.com"}),
            ME_EXAMPLE,
        ],
    )
    def patch(self, request):
        account = self._account(request)
        data = MePatch(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            account = services.customer_update(customer_id=account.id, **data.validated_data)
        except services.EmailTaken as exc:
            raise Conflict(str(exc), code="email_taken") from None
        return Response(MeOut(account).data)

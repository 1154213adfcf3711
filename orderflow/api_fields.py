"""Serializer fields shared by every context's API (the money shape of api.md)."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orderflow.domain import DomainError, Money


class MoneySchema(serializers.Serializer):
    amount = serializers.CharField(help_text="decimal string, e.g. 19.99")
    currency = serializers.CharField(help_text="ISO 4217 code, e.g. USD")


@extend_schema_field(MoneySchema)
class MoneyField(serializers.Field):
    """`{"amount": "19.99", "currency": "USD"}` ⇄ Money."""

    # Doubled braces: DRF formats error messages with str.format.
    default_error_messages = {"invalid": 'Expected {{"amount": "<decimal>", "currency": "<ISO 4217>"}}.'}

    def __init__(self, *, default_currency: str | None = None, **kwargs):
        self.default_currency = default_currency
        super().__init__(**kwargs)

    def to_representation(self, value: Money) -> dict[str, str]:
        return value.to_dict()

    def to_internal_value(self, data) -> Money:
        if not isinstance(data, dict) or "amount" not in data:
            self.fail("invalid")
        amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01")).run_validation(
            str(data["amount"])
        )
        currency = data.get("currency", self.default_currency)
        if not isinstance(currency, str):
            self.fail("invalid")
        try:
            return Money(amount, currency)
        except DomainError as exc:
            raise serializers.ValidationError(str(exc)) from None

from decimal import Decimal

import pytest

from orderflow.domain import DomainError, Money


def test_money_quantizes_to_cents_and_adds():
    total = Money.of("19.999", "USD") + Money.of("0.01", "USD")
    assert total == Money(Decimal("20.01"), "USD")
    assert total.to_dict() == {"amount": "20.01", "currency": "USD"}


def test_money_refuses_mixed_currencies_and_bad_codes():
    with pytest.raises(DomainError, match="cannot mix"):
        Money.of("1", "USD") + Money.of("1", "EUR")
    with pytest.raises(DomainError, match="currency"):
        Money.of("1", "usd")
    with pytest.raises(DomainError, match="invalid amount"):
        Money.of("abc", "USD")

import pytest

from contexts.catalog.domain import Added, Discontinued, PriceChanged, Product
from orderflow.domain import DomainError, Money


def test_add_change_price_and_discontinue_record_events():
    product = Product.add(sku="SKU-1", name=" Cup ", description="", price=Money.of("5", "USD"))
    product.change_price(Money.of("5", "USD"))  # same price: no event
    product.change_price(Money.of("6", "USD"))
    product.discontinue()
    product.discontinue()  # idempotent
    events = product.pull_events()
    assert [type(e) for e in events] == [Added, PriceChanged, Discontinued]
    assert events[0].name == "Cup" and events[1].previous_price == Money.of("5", "USD")


@pytest.mark.parametrize("sku", ["", "lower", "WITH SPACE", "X" * 65])
def test_invalid_skus_are_refused(sku):
    with pytest.raises(DomainError):
        Product.add(sku=sku, name="n", description="", price=Money.of("1", "USD"))


def test_price_rules():
    product = Product.add(sku="SKU-2", name="n", description="", price=Money.of("1", "USD"))
    with pytest.raises(DomainError, match="positive"):
        product.change_price(Money.of("0", "USD"))
    with pytest.raises(DomainError, match="currency"):
        product.change_price(Money.of("1", "EUR"))
    product.discontinue()
    with pytest.raises(DomainError, match="discontinued"):
        product.change_price(Money.of("2", "USD"))

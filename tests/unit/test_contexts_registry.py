import pytest

from orderflow.contexts_registry import ALL_CONTEXTS, parse_hosted


def test_parse_hosted():
    assert parse_hosted(None) == ALL_CONTEXTS
    assert parse_hosted("all") == ALL_CONTEXTS
    assert parse_hosted("orders, inventory,orders") == ("inventory", "orders")
    with pytest.raises(ValueError, match="unknown context"):
        parse_hosted("orders,shipping")

import pytest

from orderflow.contexts_registry import ALL_CONTEXTS, parse_hosted, per_context_ms


def test_parse_hosted():
    assert parse_hosted(None) == ALL_CONTEXTS
    assert parse_hosted("all") == ALL_CONTEXTS
    assert parse_hosted("orders, inventory,orders") == ("inventory", "orders")
    with pytest.raises(ValueError, match="unknown context"):
        parse_hosted("orders,shipping")


def test_per_context_milliseconds_are_parsed_and_bad_ones_refused_by_name():
    setting = "KAFKA_CONSUMER_FETCH_WAIT_MAX_MS_BY_CONTEXT"
    assert per_context_ms(setting, {"notifications": "100", "orders": "20"}) == {"notifications": 100, "orders": 20}
    with pytest.raises(ValueError, match=f"{setting} names unknown context\\(s\\) notification;"):
        per_context_ms(setting, {"notification": "100"})
    with pytest.raises(ValueError, match=f"{setting}: notifications='fast' is not a whole number"):
        per_context_ms(setting, {"notifications": "fast"})
    with pytest.raises(ValueError, match="is not a whole number"):
        per_context_ms(setting, {"notifications": "-5"})

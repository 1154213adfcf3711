from django.conf import settings

from orderflow.messaging.catalog import consumers_by_type, render


def test_docs_event_catalog_is_current():
    on_disk = (settings.BASE_DIR / "docs" / "events.md").read_text()
    assert on_disk == render(), "run `python manage.py event_catalog --write` and commit docs/events.md"


def test_every_saga_event_has_a_consumer():
    consumers = consumers_by_type()
    for event in [
        "OrderPlaced",
        "OrderConfirmed",
        "OrderCancelled",
        "StockReserved",
        "StockReservationFailed",
        "ProductAdded",
        "CustomerRegistered",
    ]:
        assert any(t.split(".")[2] == event and who for t, who in consumers.items()), event

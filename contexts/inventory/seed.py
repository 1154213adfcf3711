"""Demo stock: 100 units of each demo sku (dev settings only). Idempotent: a sku that already has
a stock row keeps it, so running the seed again never undoes sales or adjustments."""

from contexts.inventory.models import StockItem

DEMO_SKUS = [f"SKU-{n:04d}" for n in range(1, 11)]
DEMO_ON_HAND = 100


def seed_demo() -> str:
    created = sum(
        StockItem.objects.using("inventory").get_or_create(sku=sku, defaults={"on_hand": DEMO_ON_HAND})[1]
        for sku in DEMO_SKUS
    )
    return f"stock created for {created} sku(s)"

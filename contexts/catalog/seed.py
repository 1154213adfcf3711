"""Demo catalog: SKU-0001… with prices (dev settings only; idempotent)."""

from decimal import Decimal

from contexts.catalog import services
from contexts.catalog.models import Product
from orderflow.domain import Money

DEMO_PRODUCTS = [
    ("SKU-0001", "Espresso cup", "Porcelain espresso cup, 90 ml", "12.50"),
    ("SKU-0002", "Pour-over kettle", "Gooseneck kettle with thermometer, 1 l", "49.00"),
    ("SKU-0003", "Burr grinder", "Conical steel burrs, 40 settings", "129.00"),
    ("SKU-0004", "Coffee beans, Ethiopia", "Washed Yirgacheffe, light roast, 250 g", "14.90"),
    ("SKU-0005", "Coffee beans, Colombia", "Huila, medium roast, 250 g", "13.40"),
    ("SKU-0006", "Milk frother", "Handheld electric milk frother", "19.99"),
    ("SKU-0007", "French press", "Borosilicate glass, 1 l", "34.00"),
    ("SKU-0008", "Paper filters", "Size 02 cone filters, 100 pieces", "5.50"),
    ("SKU-0009", "Digital scale", "0.1 g resolution with timer", "27.00"),
    ("SKU-0010", "Travel mug", "Insulated steel travel mug, 350 ml", "24.00"),
]


def seed_demo() -> str:
    created = 0
    for sku, name, description, price in DEMO_PRODUCTS:
        if not Product.objects.using(services.DB).filter(sku=sku).exists():
            services.product_add(sku=sku, name=name, description=description, price=Money(Decimal(price), "USD"))
            created += 1
    return f"{created} product(s) added, {len(DEMO_PRODUCTS)} in the demo catalog"

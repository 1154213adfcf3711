"""Read side of the catalog."""

from __future__ import annotations

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db.models import F, QuerySet

from contexts.catalog.models import SEARCH_CONFIG, Product


def product_list(*, search: str | None = None) -> QuerySet[Product]:
    products = Product.objects.using("catalog").all()
    if search:
        vector = SearchVector("name", "description", config=SEARCH_CONFIG)
        query = SearchQuery(search, search_type="websearch", config=SEARCH_CONFIG)
        products = (
            products.annotate(document=vector, rank=SearchRank(vector, query))
            .filter(document=query)
            .order_by(F("rank").desc(), "sku")
        )
    return products

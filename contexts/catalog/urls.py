from django.urls import path

from contexts.catalog import api

urlpatterns = [
    path("api/catalog/products/", api.ProductListApi.as_view(), name="product-list"),
    path("api/catalog/products/<str:sku>/", api.ProductDetailApi.as_view(), name="product-detail"),
]

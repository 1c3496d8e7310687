"""Product data in search results, and the queryset hook that prepares a page of them."""

from rest_framework import serializers

from tests.testshop.models import Product

__all__ = ["ProductSerializer", "prepare_products"]


class ProductSerializer(serializers.ModelSerializer):
    """A product as search results show it: price and stock from its stock records, category names."""

    brand = serializers.CharField(source="brand_id", read_only=True)
    categories = serializers.SerializerMethodField()
    price = serializers.SerializerMethodField()
    num_in_stock = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "sku", "title", "brand", "categories", "price", "num_in_stock"]

    def get_categories(self, product) -> list[str]:
        return sorted(category.name for category in product.categories.all())

    def get_price(self, product) -> str | None:
        prices = [record.price for record in product.stockrecords.all()]
        return str(min(prices)) if prices else None

    def get_num_in_stock(self, product) -> int:
        return sum(record.num_in_stock for record in product.stockrecords.all())


def prepare_products(queryset):
    """P2W_SEARCH["PRODUCT_QUERYSET"]: what ProductSerializer reads, in a fixed number of queries."""
    return queryset.prefetch_related("categories", "stockrecords")

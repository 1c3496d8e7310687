"""What a search result shows of an Oscar product, and the queryset that loads it in constant queries."""

from oscar.core.loading import get_model
from rest_framework import serializers

Product = get_model("catalogue", "Product")


def prepare(products):
    """P2W_SEARCH["PRODUCT_QUERYSET"]: everything the serializer reads, loaded once for a page."""
    return products.prefetch_related("stockrecords", "children__stockrecords", "categories")


class ProductSerializer(serializers.ModelSerializer):
    """A product with its price and stock: its own stock records', or its variants' (children's)."""

    url = serializers.CharField(source="get_absolute_url")
    price = serializers.SerializerMethodField()
    num_in_stock = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ("id", "title", "upc", "structure", "url", "categories", "price", "num_in_stock")

    def get_price(self, product):
        prices = [record.price for record in _records(product) if record.price is not None]
        return str(min(prices)) if prices else None

    def get_num_in_stock(self, product):
        return sum(record.num_in_stock or 0 for record in _records(product))


def _records(product):
    return [*product.stockrecords.all(), *(record for child in product.children.all()
                                           for record in child.stockrecords.all())]

import re

from rest_framework import serializers

from shop_demo.catalog.models import Product


class PriceField(serializers.DecimalField):
    """A decimal that, written as text, is ASCII digits with at most one dot (a sign before them allowed).

    Python's Decimal, which DRF's field uses, also reads "1_5" as 15, "1e3" as 1000 and digits of
    other scripts ("١٥"): a merchant's typo would become another price without a word.
    """

    plain = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")

    def to_internal_value(self, data):
        if isinstance(data, str) and not self.plain.fullmatch(data.strip()):
            self.fail("invalid")
        return super().to_internal_value(data)


def price_field(**kwargs):
    """A product's price, as the API and the catalog import both accept it."""
    return PriceField(max_digits=10, decimal_places=2, min_value=0, **kwargs)


def currency_field(**kwargs):
    """A three-letter code in capitals, as the API and the catalog import both accept it."""
    return serializers.RegexField(r"^[A-Z]{3}$", error_messages={"invalid": "Give a three-letter currency code, "
                                                                            "e.g. EUR."}, **kwargs)


class ProductSerializer(serializers.ModelSerializer):
    """A product as search results and the product API show it; writes are checked as an import row is.

    ``context["merchant"]``: whose catalog a new product joins (an update keeps the product's own), so
    that a SKU the merchant already has is refused by name instead of failing in the database.
    """

    merchant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    price = price_field()
    currency = currency_field(required=False)

    class Meta:
        model = Product
        fields = ["id", "sku", "title", "description", "category", "price", "currency", "in_stock", "merchant"]

    def update(self, instance, validated_data):
        """Write only the fields the request gives: saving the whole row, a PATCH of the price wrote back the
        title it had read, which an import or another request may have changed since (a lost update)."""
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save(update_fields=list(validated_data))
        return instance

    def validate_sku(self, sku):
        merchant = self.instance.merchant if self.instance else self.context.get("merchant")
        others = Product.objects.filter(merchant=merchant, sku=sku)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if merchant is not None and others.exists():
            raise serializers.ValidationError(DUPLICATE_SKU)
        return sku


DUPLICATE_SKU = "You already have a product with this sku."

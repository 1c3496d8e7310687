"""How one row of a merchant's catalog upload becomes a product of the demo shop."""

from rest_framework import serializers

from shop_demo.catalog.models import Merchant, Product


class ProductImportSerializer(serializers.Serializer):
    """One manifest row; ``save(merchant=...)`` creates or updates the product with that SKU."""

    sku = serializers.CharField(max_length=64)
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    category = serializers.CharField(max_length=64)
    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, default="EUR",
                                      error_messages={"invalid": "Give a three-letter currency code, e.g. EUR."})
    in_stock = serializers.BooleanField(required=False, default=True)
    images = serializers.ListField(child=serializers.CharField(max_length=300), min_length=1,
                                   error_messages={"min_length": "Name at least one image."})

    def save(self, *, merchant):
        values = {k: v for k, v in self.validated_data.items() if k not in ("sku", "images")}
        product, _ = Product.objects.update_or_create(
            merchant=merchant, sku=self.validated_data["sku"], defaults={**values, "listed": True})
        return product

    @classmethod
    def merchant_for(cls, user):
        return Merchant.objects.filter(user=user).first() if user.is_authenticated else None

    @classmethod
    def merchant_by_key(cls, key):
        return Merchant.objects.get(pk=key)

    @classmethod
    def listed_skus(cls, merchant):
        """The SKUs of the merchant's products that shoppers see."""
        return Product.objects.filter(merchant=merchant, listed=True).values_list("sku", flat=True)

    @classmethod
    def unlist(cls, merchant, skus):
        """Unlist the merchant's products with these SKUs; return how many were listed."""
        return Product.objects.filter(merchant=merchant, listed=True, sku__in=skus).update(listed=False)

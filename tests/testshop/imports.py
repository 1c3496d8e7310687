"""How one row of a catalog upload becomes a product of the test shop (importer.py's contract).

The merchant is a Brand (keyed by its slug): its owner uploads, and ``merchant_key`` is the
slug. A row's price and stock go to the product's stock record. "Unlisted" is unpublished.
"""

from rest_framework import serializers

from tests.testshop.models import Brand, Category, Product, StockRecord

__all__ = ["ProductImportSerializer"]


class ProductImportSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64, help_text="The brand's own code for the product.")
    title = serializers.CharField(max_length=200, help_text="The product's name.")
    category = serializers.CharField(max_length=100, required=False, allow_blank=True, default="",
                                     help_text="The name of an existing category, or empty.")
    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0, help_text="e.g. 19.99")
    num_in_stock = serializers.IntegerField(min_value=0, required=False, default=0, help_text="Units in stock.")
    images = serializers.ListField(child=serializers.CharField(max_length=300), min_length=1,
                                   help_text="File names of the product's photos, the main one first.")

    def validate_category(self, value):
        if value and not Category.objects.filter(name=value).exists():
            raise serializers.ValidationError(f"There is no category {value!r}.")
        return value

    def save(self, *, merchant):
        data = self.validated_data
        product, _ = Product.objects.update_or_create(
            brand=merchant, sku=data["sku"], defaults={"title": data["title"], "published": True})
        if data["category"]:
            product.categories.set(Category.objects.filter(name=data["category"]))
        StockRecord.objects.update_or_create(
            product=product, partner="warehouse",
            defaults={"price": data["price"], "num_in_stock": data["num_in_stock"]})
        return product

    @classmethod
    def merchant_for(cls, user):
        return Brand.objects.filter(owner=user).first() if user.is_authenticated else None

    @classmethod
    def merchant_by_key(cls, key):
        return Brand.objects.get(pk=key)

    @classmethod
    def listed_skus(cls, merchant):
        return Product.objects.filter(brand=merchant, published=True).values_list("sku", flat=True)

    @classmethod
    def unlist(cls, merchant, skus):
        return Product.objects.filter(brand=merchant, published=True, sku__in=skus).update(published=False)

    @classmethod
    def products(cls, merchant):
        return Product.objects.filter(brand=merchant)

    @classmethod
    def merchants_for_staff(cls, user):
        """Every brand for staff who may add and change products (an upload does both), none for other staff."""
        if user.is_staff and user.has_perms(["testshop.add_product", "testshop.change_product"]):
            return Brand.objects.order_by("name", "pk")
        return Brand.objects.none()

    @classmethod
    def example_row(cls):
        return {"sku": "LAMP-1", "title": "Brass lamp", "category": "lighting", "price": "49.00",
                "num_in_stock": "3", "images": "lamp-1.jpg"}

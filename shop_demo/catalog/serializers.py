from rest_framework import serializers

from shop_demo.catalog.models import Product


class ProductSerializer(serializers.ModelSerializer):
    merchant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Product
        fields = ["id", "sku", "title", "description", "category", "price", "currency", "in_stock", "merchant"]

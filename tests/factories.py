"""Factories for the demo shop's products and their images."""

import hashlib
import io
from decimal import Decimal

import factory
from django.core.files.base import ContentFile
from PIL import Image

from p2w_search.models import ProductImage
from shop_demo.catalog.models import Merchant, Product


def png(colour=(200, 30, 30), size=(40, 40)):
    """Return the bytes of a PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Merchant {n}")
    slug = factory.Sequence(lambda n: f"merchant-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    merchant = factory.SubFactory(MerchantFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = factory.Sequence(lambda n: f"Product {n}")
    category = "t-shirt"
    price = Decimal("19.99")
    in_stock = True


class ProductImageFactory(factory.django.DjangoModelFactory):
    """An image of a product; pass ``data=`` for other bytes than a red square."""

    class Meta:
        model = ProductImage

    class Params:
        data = factory.LazyFunction(png)

    product = factory.SubFactory(ProductFactory)
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.data).hexdigest())
    file = factory.LazyAttribute(lambda o: ContentFile(o.data, name="image.png"))

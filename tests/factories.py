"""Factories for the demo shop's products and their images."""

import hashlib
import io
import zipfile
from decimal import Decimal

import factory
from django.core.files.base import ContentFile
from django.db import models
from PIL import Image

from p2w_search.imaging import ImageRejected
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
    """An image of a product; pass ``data=`` for other bytes than a red square.

    Bytes that are no image are stored as they are, as a file damaged in storage would be
    (``ProductImage.save`` refuses them from any upload).
    """

    class Meta:
        model = ProductImage

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        image = model_class(*args, **kwargs)
        try:
            image.save()
        except ImageRejected:
            image.file.seek(0)
            models.Model.save(image)
        return image

    class Params:
        data = factory.LazyFunction(png)

    product = factory.SubFactory(ProductFactory)
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.data).hexdigest())
    file = factory.LazyAttribute(lambda o: ContentFile(o.data, name="image.png"))


def catalog_upload(client, rows, **options):
    """POST one part of the catalog (a CSV manifest and a zip of its images); return the 202's body."""
    names = [name for images in rows.values() for name in images]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for number, name in enumerate(names):
            z.writestr(name, png((20 * number % 256, 255 - 20 * number % 256, 90)))
    archive.seek(0)
    archive.name = "images.zip"
    lines = ["sku,title,category,price,images"] + [f"{sku},{sku.title()},mug,9.50,{';'.join(images)}"
                                                   for sku, images in rows.items()]
    manifest = io.BytesIO("\n".join(lines).encode())
    manifest.name = "catalog.csv"
    response = client.post("/api/imports/", {"manifest": manifest, "archive": archive, **options}, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()


def uploaded(data, name="query.png"):
    """``data`` as a file a client uploads, called ``name``."""
    file = io.BytesIO(data)
    file.name = name
    return file


def embed_catalog():
    """Register the model that serves (the tiny test model) and embed every image there is; return the model."""
    from p2w_search import indexing
    from p2w_search.models import ImageEmbedding

    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return model


def solid_colour_shop():
    """Four products (t-shirts and mugs, 10 to 40), one solid-colour image each, embedded by the model that serves."""
    products = []
    for i, rgb in enumerate([(220, 20, 20), (20, 200, 40), (20, 40, 220), (10, 10, 10)]):
        product = ProductFactory(category="mug" if i % 2 else "t-shirt", price=Decimal(10 + 10 * i))
        ProductImageFactory(product=product, data=png(rgb))
        products.append(product)
    embed_catalog()
    return products


def token_client(user):
    """An API client that authenticates as ``user`` with its token."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def post_catalog(client, manifest, archive_bytes, **options):
    """POST an upload of ``manifest`` (CSV text) and a zip (its bytes) to the API; return the response."""
    handle = uploaded(manifest.encode(), "catalog.csv")
    archive = uploaded(archive_bytes, "images.zip")
    return client.post("/api/imports/", {"manifest": handle, "archive": archive, **options}, format="multipart")

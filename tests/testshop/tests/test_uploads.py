"""A catalog upload through the API with the custom user's token; the merchant is whatever the shop's serializer says.

Here a Brand (keyed by its slug) owned by the user (tests/testshop/imports.py). The job is
run in this process (the worker's part; test_workers.py runs a real one).
"""

import io
import zipfile
from decimal import Decimal

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from p2w_search.models import ImageEmbedding, ImportJob, ProductImage
from p2w_search.uploads import importer
from tests.testshop.models import Product, ShopImage, User
from tests.testshop.tests.shop import embed_pending, png

CSV = ("sku,title,category,price,num_in_stock,images\n"
       "LAMP-9,Teal lamp,lamps,42.00,4,teal.png\n"
       "RUG-9,Pink rug,textiles,99.90,0,pink.png;pink-back.png\n"
       "BAD-1,No price,lamps,,1,teal.png\n")
IMAGES = {"teal.png": png((0, 128, 128)), "pink.png": png((255, 150, 200)), "pink-back.png": png((250, 140, 190))}


def zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    buffer.seek(0)
    buffer.name = "images.zip"
    return buffer


def api_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def send(api, manifest=CSV, files=IMAGES, **options):
    handle = io.BytesIO(manifest.encode())
    handle.name = "catalog.csv"
    response = api.post("/api/imports/", {"manifest": handle, "archive": zipped(files), **options}, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()


@pytest.fixture
def alice(catalog):
    return api_for(catalog.users["alice"])


def test_a_brand_owner_uploads_its_catalog_with_its_token(alice, client, catalog, django_capture_on_commit_callbacks):
    sent = send(alice)
    job = ImportJob.objects.get(pk=sent["id"])
    assert (job.merchant_key, job.owner.email) == ("acme", "alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        importer.run_import(job)

    progress = alice.get(sent["url"]).json()
    assert (progress["state"], progress["rows_accepted"], progress["rows_rejected"]) == ("done", 2, 1)
    assert progress["errors"] == [{"row": 4, "field": "price", "reason": "This field is required."}]
    teal = Product.objects.get(brand="acme", sku="LAMP-9")
    assert (teal.title, [c.name for c in teal.categories.all()]) == ("Teal lamp", ["lamps"])
    assert [(r.price, r.num_in_stock) for r in teal.stockrecords.all()] == [(Decimal("42.00"), 4)]
    assert list(ProductImage.objects.filter(product__sku="RUG-9").values_list("position", "source_pk")) == [
        (0, ""), (1, "")]  # the app's own images: an upload is not the shop's image model

    assert embed_pending() == 3
    assert progress["images_total"] == 3
    lamps = catalog.categories["lamps"]
    found = client.get("/api/search/text/", {"q": "teal lamp", "brand": "acme", "category": lamps.pk, "k": 50})
    assert str(teal.pk) in [row["product"]["id"] for row in found.json()["results"]]


def test_only_the_owner_and_staff_see_a_brands_upload(alice, catalog):
    sent = send(alice)
    assert api_for(catalog.users["bob"]).get(sent["url"]).status_code == 404
    assert api_for(catalog.users["staff"]).get(sent["url"]).status_code == 200
    listed = api_for(catalog.users["bob"]).get("/api/imports/").json()
    assert listed["count"] == 0


def test_a_user_with_no_brand_may_not_upload(catalog):
    carol = User.objects.create_user("carol@example.com", "pw")
    handle = io.BytesIO(CSV.encode())
    handle.name = "catalog.csv"
    response = api_for(carol).post("/api/imports/", {"manifest": handle}, format="multipart")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only merchants upload catalogs; this account belongs to no merchant."}


def test_an_upload_for_a_product_with_shop_images_leaves_them_alone(alice, catalog, django_capture_on_commit_callbacks):
    """The red lamp (SKU-0, acme) has a ShopImage; a row for it with an uploaded photo must not take its place."""
    shop_image = catalog["red lamp"].images.get()
    mirror = ProductImage.objects.get(source_pk=str(shop_image.pk))
    sent = send(alice, manifest="sku,title,price,images\nSKU-0,Red lamp,31.00,teal.png\n")
    with django_capture_on_commit_callbacks(execute=True):
        importer.run_import(ImportJob.objects.get(pk=sent["id"]))

    assert alice.get(sent["url"]).json()["rows_accepted"] == 1
    assert shop_image.image.storage.exists(shop_image.image.name)  # the shop's file was not deleted
    mirror.refresh_from_db()
    assert (mirror.file.name, mirror.source_pk) == (shop_image.image.name, str(shop_image.pk))
    assert ShopImage.objects.filter(pk=shop_image.pk).exists()
    uploaded = ProductImage.objects.filter(product=catalog["red lamp"], source_pk="")
    assert uploaded.count() == 1
    assert ImageEmbedding.objects.get(image=mirror).state == ImageEmbedding.State.READY

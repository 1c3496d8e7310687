"""The index follows Oscar's own images and products, on a real Celery worker with the shop's settings.

Images are Oscar's ``catalogue.ProductImage`` (``original``, ``display_order``), mirrored by
``P2W_SEARCH["IMAGE_MODEL"]``: saves and deletes through signals, and what no signal sees
(an existing catalog, a bulk insert, a queryset update, a raw delete) through ``p2w_index sync``.
"""

import io

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from p2w_search.models import EmbeddingModel, ImageEmbedding
from p2w_search.models import ProductImage as Mirror
from tests.conftest import wait_for
from tests.oscar_shop.myshop.celery import app
from tests.oscar_shop.tests.catalog import ProductImage, png

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RED, GREEN, BLUE, YELLOW, BLACK = (220, 20, 20), (20, 200, 40), (20, 40, 220), (240, 220, 10), (10, 10, 10)


def all_embedded(count):
    """Wait until ``count`` images are ready under the serving model and nothing is pending."""
    def done():
        rows = ImageEmbedding.objects.filter(model__state=EmbeddingModel.State.SERVING)
        return (rows.filter(state="ready").count() == count and not rows.exclude(state="ready").exists()
                and Mirror.objects.count() == count)
    wait_for(done, timeout=90, message=f"{count} images embedded by the worker")


def by_photo(colour, **query):
    upload = io.BytesIO(png(colour))
    upload.name = "photo.png"
    response = APIClient().post("/api/search/image/?" + "&".join(f"{k}={v}" for k, v in query.items()),
                                {"image": upload}, format="multipart")
    assert response.status_code == 200, response.content
    return [(row["product"]["id"], row["score"]) for row in response.json()["results"]]


def bulk_image(product, colour):
    """An image row written without a signal (a bulk insert), its file stored as Oscar stores one."""
    name = ProductImage._meta.get_field("original").storage.save("images/products/bulk.png", ContentFile(png(colour)))
    return ProductImage.objects.bulk_create([ProductImage(product=product, original=name, display_order=0)])[0]


def test_an_existing_catalog_is_indexed_and_what_no_signal_saw_is_reconciled(shop, worker):
    with transaction.atomic():  # a catalog that was there before p2w-search was installed: no signal saw it
        products = [shop.product(f"Old {i}") for i in range(3)]
        images = [bulk_image(product, colour) for product, colour in zip(products, (RED, GREEN, BLUE))]
    assert not Mirror.objects.exists()

    call_command("p2w_index", "sync", verbosity=0)  # as the README says
    call_command("p2w_index", "embed", verbosity=0)
    all_embedded(3)
    assert by_photo(GREEN)[0] == (products[1].pk, pytest.approx(1.0, abs=1e-3))

    # Later bulk inserts: beat's sweep, sent as the shop's schedule sends it, syncs and the worker embeds.
    with transaction.atomic():
        late = shop.product("Late")
        bulk_image(late, BLACK)
    entry = settings.CELERY_BEAT_SCHEDULE["p2w-sweep"]
    app.send_task(entry["task"], **entry["options"])  # through the shop's Celery app, to the queue it names
    all_embedded(4)
    assert by_photo(BLACK)[0] == (late.pk, pytest.approx(1.0, abs=1e-3))

    # A queryset update (another file) and a raw delete: no signal; the next sync reconciles both.
    ProductImage.objects.filter(product=products[0]).update(original=images[2].original.name)  # the blue file
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ProductImage._meta.db_table} WHERE product_id = %s", [products[1].pk])
    out = io.StringIO()
    call_command("p2w_index", "sync", stdout=out)
    assert out.getvalue().startswith("0 created, 1 changed, 1 deleted, 2 unchanged"), out.getvalue()
    all_embedded(3)
    assert {pid for pid, score in by_photo(BLUE) if score > 0.999} == {products[0].pk, products[2].pk}
    assert products[1].pk not in dict(by_photo(GREEN))


def test_the_index_follows_image_add_replace_delete_and_product_unpublish_and_delete(shop, worker):
    tree = shop.tree()
    shirt = shop.product("Shirt", category=tree["Shirts"], price=20, stock=3)
    other = shop.product("Other", category=tree["Shirts"], price=20, stock=3, colour=YELLOW)
    first = shop.image(shirt, RED)  # add
    all_embedded(2)
    assert by_photo(RED)[0] == (shirt.pk, pytest.approx(1.0, abs=1e-3))
    assert Mirror.objects.get(source_pk=str(first.pk)).file.name == first.original.name  # the shop's file, not a copy

    first.original.save("green.png", ContentFile(png(GREEN)))  # replace: the dashboard's "change image"
    wait_for(lambda: by_photo(GREEN)[0] == (shirt.pk, pytest.approx(1.0, abs=1e-3)), timeout=90,
             message="the replaced image embedded again")
    assert dict(by_photo(RED))[shirt.pk] < 0.999

    second = shop.image(shirt, BLUE, order=1)
    all_embedded(3)
    first.delete()  # Oscar renumbers the others' display_order: the blue one is now the primary image
    all_embedded(2)
    assert not Mirror.objects.filter(source_pk=str(first.pk)).exists()
    assert Mirror.objects.get(source_pk=str(second.pk)).position == 0
    assert dict(by_photo(GREEN))[shirt.pk] < 0.999  # its green picture is gone from the index

    # "Like this, but ..." by the shirt, encoded by the worker on the query queue, as in production.
    worker_answer = _composed(shirt, encoding="worker")
    assert worker_answer.status_code == 200, worker_answer.content
    assert worker_answer.json()["results"] == _composed(shirt, encoding="local").json()["results"]

    shirt.is_public = False  # unpublished (the dashboard's "Is public"): hidden at once, nothing to reindex
    shirt.save()
    assert shirt.pk not in dict(by_photo(BLUE))
    for response in (APIClient().get(f"/api/search/similar/?product={shirt.pk}"), _composed(shirt)):
        assert response.status_code == 400
        assert response.json() == {"product": [f"There is no product with id {shirt.pk}."]}

    shirt.delete()
    assert not Mirror.objects.filter(product_id=shirt.pk).exists()
    assert ImageEmbedding.objects.filter(image__product_id=other.pk).count() == ImageEmbedding.objects.count() == 1


def _composed(product, encoding="local"):
    with override_settings(P2W_SEARCH={**settings.P2W_SEARCH, "QUERY_ENCODING": encoding}):
        return APIClient().post("/api/search/composed/", {"product": product.pk, "text": "in red"}, format="json")

"""What a third shop's conventions broke, beyond the demo's and tests/testshop's.

The shop these were found with (a scratch project, not kept): products keyed by text
("tee/red-01", "ÄBC 12", up to 100 characters) with a soft-delete default manager, numeric
SKUs, the user as the merchant, an app label unlike its module, ``USE_TZ = False``, a
``SmallAutoField`` default, and its own image model keyed by text on a storage of its own.
The search API, the storefront, uploads, the merchant pages and the admin worked with them;
what did not is pinned here, on the demo's settings.
"""

import gc
import os
import uuid

import pytest
from celery.signals import worker_shutdown
from django.db import models
from django.test.utils import isolate_apps

import p2w_search.tasks  # noqa: F401  (connects the worker signals, as a worker's import of the tasks does)
from p2w_search import checks, shop_images, workers
from p2w_search.models import ImportJob, ProductImage, WorkerProcess
from shop_demo.catalog.models import Merchant, Product
from tests.factories import ProductFactory, ProductImageFactory


def shop_image_model(key=None, **fields):
    """A shop's image model ``tests.ShopPhoto`` keyed by ``key`` (a primary-key field; None: an automatic integer),
    with ``fields`` (by default a foreign key ``product`` to the demo's product), in a registry of its own: no table."""
    fields.setdefault("product", models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+"))
    with isolate_apps("tests"):
        attrs = {"__module__": __name__, "Meta": type("Meta", (), {"app_label": "tests"}),
                 "picture": models.ImageField(upload_to="pictures/"), "rank": models.IntegerField(default=0), **fields}
        if key is not None:
            attrs["key"] = key
        return type("ShopPhoto", (models.Model,), attrs)


def shop_image_config(model):
    return {"model": model, "product": "product", "file": "picture", "order": "rank"}


def image_key_findings(settings, monkeypatch, model):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": {"MODEL": "tests.ShopPhoto", "FILE": "picture"}}
    monkeypatch.setattr(shop_images, "config", lambda: shop_image_config(model))
    return [(message.id, message.msg) for message in checks.check_settings() if message.id == "p2w_search.W014"]


@pytest.mark.parametrize("key, holds", [
    (models.CharField(max_length=300, primary_key=True), "up to 300 characters"),
    (models.SlugField(max_length=256, primary_key=True), "up to 256 characters"),
    (models.TextField(primary_key=True), "keys of any length"),
])
def test_a_shop_image_model_keyed_by_longer_texts_than_the_mirror_holds_is_W014(settings, monkeypatch, key, holds):
    """The mirror keeps the shop image's key in ``source_pk`` (255 characters, 64 before migration 0015): a longer
    key made its insert fail at every sync and save signal, so the image was never searched, with only a
    traceback in the log."""
    limit = ProductImage._meta.get_field("source_pk").max_length
    assert image_key_findings(settings, monkeypatch, shop_image_model(key)) == [(
        "p2w_search.W014", f"tests.ShopPhoto.key holds {holds}; p2w_search's mirror of an image keeps the key of the "
                           f"shop's image in {limit}.")]


@pytest.mark.parametrize("key", [
    None,  # an integer
    models.UUIDField(primary_key=True, default=uuid.uuid4),
    models.CharField(max_length=40, primary_key=True),
    models.CharField(max_length=100, primary_key=True),  # 64 held no more than that before migration 0015
    models.CharField(max_length=255, primary_key=True),
])
def test_a_shop_image_model_whose_keys_fit_the_mirror_is_no_W014(settings, monkeypatch, key):
    assert image_key_findings(settings, monkeypatch, shop_image_model(key)) == []


@pytest.fixture
def worker_process(monkeypatch):
    """This test process as a worker's main process that has beaten (the solo and threads pools beat there)."""
    monkeypatch.setitem(workers._worker, "hostname", "query@third")
    monkeypatch.setattr(workers, "_stopped", [False], raising=False)
    workers._beat()
    return WorkerProcess.objects.filter(hostname="query@third", pid=os.getpid())


def test_a_worker_whose_pool_runs_in_its_main_process_forgets_its_row_on_a_clean_stop(db, worker_process):
    """Celery sends worker_process_shutdown in a prefork pool's processes only: a solo or threads worker (the
    README's query worker) stopped cleanly kept its row, and the index health read it as a process lost (H006)
    for an hour after every restart."""
    assert worker_process.exists()
    try:
        worker_shutdown.send(sender=None)
    finally:
        gc.unfreeze()  # the worker's own shutdown handler freezes the heap for its exit
    assert not worker_process.exists()
    workers._beat()  # the heartbeat thread, waking once more before the process exits
    assert not worker_process.exists()


def test_a_shop_image_keyed_to_its_product_by_another_field_is_mirrored_on_that_product(db):
    """``ForeignKey(Product, to_field="sku")``: the column holds the product's SKU, which the mirror took for its
    key. Here the SKU is another product's key, and the image was searched as that product's."""
    other = ProductFactory()
    product = ProductFactory(sku=str(other.pk))
    model = shop_image_model(product=models.ForeignKey(Product, to_field="sku", on_delete=models.CASCADE,
                                                       related_name="+"))
    image = model(product_id=product.sku, picture="pictures/tee.png", rank=2)
    assert shop_images._values(image, shop_image_config(model)) == {
        "product_id": product.pk, "name": "pictures/tee.png", "position": 2}
    assert shop_images._values(model(product_id=None, picture="pictures/none.png"), shop_image_config(model))[
        "product_id"] is None  # no product: no mirror, as before


@pytest.mark.parametrize("product", [
    models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+"),
    models.CharField(max_length=64),
])
def test_an_image_model_whose_product_field_is_no_key_to_the_product_model_is_E015(settings, monkeypatch, product):
    """The mirror's product was this field's value: a merchant's key taken for a product's, or every mirror failing."""
    model = shop_image_model(product=product)
    get_model = shop_images.apps.get_model
    monkeypatch.setattr(shop_images.apps, "get_model",
                        lambda label, *args: model if label == "tests.ShopPhoto" else get_model(label, *args))
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": {"MODEL": "tests.ShopPhoto", "FILE": "picture"}}
    assert [(m.id, m.msg) for m in checks.check_settings()] == [(
        "p2w_search.E015", "P2W_SEARCH['IMAGE_MODEL']['PRODUCT'] is 'product', which is no foreign key of "
                           "tests.ShopPhoto to catalog.Product, the product model (P2W_SEARCH_PRODUCT_MODEL).")]


def test_an_image_model_keyed_to_the_product_model_passes_the_checks(settings, monkeypatch):
    model = shop_image_model()
    get_model = shop_images.apps.get_model
    monkeypatch.setattr(shop_images.apps, "get_model",
                        lambda label, *args: model if label == "tests.ShopPhoto" else get_model(label, *args))
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": {"MODEL": "tests.ShopPhoto", "FILE": "picture"}}
    assert checks.check_settings() == []


def test_the_image_actions_of_a_shops_product_admin_act_on_the_selected_products_images(db):
    """``ImageActions.images`` took the selected products' keys for images' keys: with text keys a 500 (bigint =
    character varying), with integer keys the images whose ids happened to be the products' (the demo's own
    product admin hid it by overriding ``images``)."""
    from django.db import transaction

    from p2w_search.admin import ImageActions

    first, second = ProductFactory(), ProductFactory()
    ProductImageFactory.create_batch(3, product=second)  # image ids run ahead of product ids
    mine = ProductImageFactory.create_batch(2, product=first)
    with transaction.atomic():
        assert list(ImageActions().images(Product.objects.filter(pk=first.pk))) == mine
        assert list(ImageActions().images(ProductImage.objects.filter(pk=mine[1].pk))) == [mine[1]]


def test_the_mirror_and_the_jobs_hold_a_shops_long_text_keys(db):
    """An image keyed by a path ("products/tee/red-01/front.jpg", 100 characters here) and a merchant keyed by its
    email address did not fit (64 and 100 characters): the mirror's insert and the upload's job failed."""
    image_key = "products/" + "tee-red-01/" * 7 + "front-view.jpg"
    email = "orders." + "a" * 230 + "@shop.example"
    mirror = ProductImage.objects.create(product=ProductFactory(), file="pictures/front.jpg", sha256="0" * 64,
                                         source_pk=image_key)
    job = ImportJob.objects.create(merchant_key=email, manifest="p2w/imports/catalog.csv")
    assert (len(image_key), len(email)) == (100, 250)
    assert ProductImage.objects.get(source_pk=image_key) == mirror and ImportJob.objects.get(merchant_key=email) == job

"""Writers of one merchant's catalog at once: imports, the product API, the admin and the embedding workers.

Each test stops one writer at a chosen point, most often inside its transaction (at a signal
it sends), on a thread of its own, so on a database connection of its own; lets another writer
run into it (until PostgreSQL shows it waiting for a lock, where it must); lets the first go on,
and checks what PostgreSQL holds once both have ended.
"""

import hashlib
import threading
import time
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.models.signals import post_delete, post_save

from p2w_search import indexing, locks
from p2w_search.embedders import get_embedder
from p2w_search.imaging import load_image
from p2w_search.models import ImageEmbedding, ImportJob, ProductImage
from p2w_search.uploads import importer
from shop_demo.catalog import api as catalog_api
from shop_demo.catalog.models import Product
from shop_demo.catalog.serializers import DUPLICATE_SKU, ProductSerializer
from tests.conftest import wait_for
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory, png, post_catalog, token_client
from tests.test_imports import hold_import_lock, zipped

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "sku,title,description,category,price,images\n"
RED, BLUE = png((220, 20, 20)), png((20, 20, 220))


class Writer(threading.Thread):
    """``work()`` on a thread of its own, so on a database connection of its own; ``result()`` waits for it."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.value, self.error = work, None, None
        self.start()

    def run(self):
        try:
            self.value = self.work()
        except BaseException as exc:  # raised again by result(), in the test
            self.error = exc
        finally:
            connections.close_all()

    def result(self, timeout=30):
        self.join(timeout)
        assert not self.is_alive(), "the writer did not end"
        if self.error is not None:
            raise self.error
        return self.value


class Stop:
    """A point where the first writer to reach it waits until ``go()``; ``reached`` is set once one is there."""

    def __init__(self):
        self.reached, self.released, self.lock, self.passed = threading.Event(), threading.Event(), threading.Lock(), 0

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.passed += 1
            first = self.passed == 1
        if first:
            self.reached.set()
            assert self.released.wait(30), "the test never let the writer go on"

    def wait(self):
        assert self.reached.wait(30), "no writer reached the stop"

    def go(self):
        self.released.set()


@pytest.fixture
def stop_at(transactional_db):
    """``stop_at(signal, sender)``: a Stop where a writer sends ``signal`` for ``sender`` (inside its transaction).

    Every stop lets its writer go before the test's tables are emptied.
    """
    connected = []

    def connect(signal, sender):
        stop = Stop()
        signal.connect(stop, sender=sender, weak=False)
        connected.append((signal, sender, stop))
        return stop

    yield connect
    for signal, sender, stop in connected:
        stop.go()
        signal.disconnect(stop, sender=sender)


def wait_until_a_writer_waits_for_a_lock():
    """Return once another session of the test database waits for a lock (a row or a key another writer holds)."""

    def waiting():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            return cursor.fetchone()[0]

    wait_for(waiting, timeout=20, message="a writer waiting for a lock")


@pytest.fixture
def merchant(transactional_db, django_user_model):
    return MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme", password="pw"))


@pytest.fixture
def api(merchant):
    return token_client(merchant.user)


def upload(api, manifest, files, **options):
    """POST an upload of ``manifest`` and its images; return its job, not run yet (that is a worker's part)."""
    response = post_catalog(api, manifest, zipped(files).getvalue(), **options)
    assert response.status_code == 202, response.content
    return ImportJob.objects.get(pk=response.json()["id"])


def requesting(merchant, method, path, data=None):
    """A product API request of ``merchant`` on a thread of its own, with a client of its own."""
    return Writer(lambda: getattr(token_client(merchant.user), method)(path, data, format="json"))


def importing(job):
    """Run ``job`` as a worker would, on a thread of its own."""
    return Writer(lambda: importer.run_import(job))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# The import and the product API

def test_an_import_keeps_an_api_edit_committed_after_it_read_the_product(merchant, api, media, stop_at):
    """The row leaves the description out (so keeps it), but another row of the chunk gives one: the UPDATE writes
    the description of every product it read. Read before the API's edit committed, it wrote the old one back."""
    tee = ProductFactory(merchant=merchant, sku="TEE", title="Tee", description="Old words")
    stop = stop_at(post_save, Product)
    patch = requesting(merchant, "patch", f"/api/products/{tee.pk}/", {"description": "New words"})
    stop.wait()  # the edit is written, not committed
    job = upload(api, HEADER + "TEE,Tee renamed,,t-shirt,5,red.png\nMUG,Mug,A mug,mug,7,blue.png\n",
                 {"red.png": RED, "blue.png": BLUE})
    run = importing(job)
    wait_until_a_writer_waits_for_a_lock()  # the import, at the product the edit holds
    stop.go()

    assert patch.result().status_code == 200
    assert run.result().state == "done"
    assert Product.objects.values_list("title", "description").get(pk=tee.pk) == ("Tee renamed", "New words")


def test_an_import_adds_back_a_product_the_api_deleted_while_it_read_it(merchant, api, media, stop_at):
    """It used to update the product the delete had taken and add images to it: the import failed at its commit."""
    tee = ProductFactory(merchant=merchant, sku="TEE", title="Tee")
    ProductImageFactory(product=tee, data=RED)
    stop = stop_at(post_delete, Product)
    delete = requesting(merchant, "delete", f"/api/products/{tee.pk}/")
    stop.wait()  # deleted, not committed
    job = upload(api, HEADER + "TEE,Tee again,,t-shirt,5,blue.png\n", {"blue.png": BLUE})
    run = importing(job)
    wait_until_a_writer_waits_for_a_lock()
    stop.go()

    assert delete.result().status_code == 204
    assert run.result().state == "done"
    again = Product.objects.get(merchant=merchant, sku="TEE")
    assert again.pk != tee.pk and again.title == "Tee again"
    assert list(again.p2w_images.values_list("sha256", flat=True)) == [sha256(BLUE)]
    assert ProductImage.objects.count() == 1


def test_an_import_adds_back_an_image_the_admin_deleted_while_it_read_it(merchant, api, media, stop_at, admin_client):
    """It used to update the image the delete had taken and queue it: the import failed at its commit."""
    tee = ProductFactory(merchant=merchant, sku="TEE", title="Tee")
    image = ProductImageFactory(product=tee, data=RED)
    stop = stop_at(post_delete, ProductImage)
    delete = Writer(lambda: admin_client.post(f"/admin/p2w_search/productimage/{image.pk}/delete/", {"post": "yes"}))
    stop.wait()  # deleted, not committed
    job = upload(api, HEADER + "TEE,Tee,,t-shirt,5,blue.png\n", {"blue.png": BLUE})
    run = importing(job)
    wait_until_a_writer_waits_for_a_lock()
    stop.go()

    assert delete.result().status_code == 302
    assert run.result().state == "done"
    assert list(ProductImage.objects.values_list("product_id", "position", "sha256")) == [(tee.pk, 0, sha256(BLUE))]


def test_an_import_updates_a_product_the_api_added_after_it_looked_for_the_sku(merchant, api, media, stop_at):
    """It used to insert the SKU a second time: the unique constraint failed the whole import."""
    stop = stop_at(post_save, Product)
    create = requesting(merchant, "post", "/api/products/", {"sku": "TEE", "title": "From the API",
                                                            "category": "t-shirt", "price": "3.00"})
    stop.wait()  # added, not committed
    job = upload(api, HEADER + "TEE,From the file,,t-shirt,5,red.png\n", {"red.png": RED})
    run = importing(job)
    wait_until_a_writer_waits_for_a_lock()  # the import's INSERT, at the SKU the API holds
    stop.go()

    created = create.result()
    assert created.status_code == 201, created.content
    assert run.result().state == "done"
    tee = Product.objects.get(merchant=merchant, sku="TEE")
    assert (tee.pk, tee.title, tee.price) == (created.json()["id"], "From the file", Decimal("5.00"))
    assert list(tee.p2w_images.values_list("sha256", flat=True)) == [sha256(RED)]


def test_an_api_write_of_a_product_an_import_is_writing_is_a_409_at_once(merchant, api, media, monkeypatch):
    """An import holds the products it wrote until it commits: the requests waited for it, minutes for a large
    catalog, and hung their clients and the web threads so long."""
    tee = ProductFactory(merchant=merchant, sku="TEE", title="Tee")
    monkeypatch.setattr(importer, "CHUNK_ROWS", 1)  # each row written before the next one is counted
    monkeypatch.setattr(locks, "LOCK_WAIT_MS", 200)
    job = upload(api, HEADER + "TEE,Tee renamed,,t-shirt,5,red.png\nNEW,New,,mug,7,red.png\n", {"red.png": RED})
    answers = []

    def write_once_both_rows_are_written(done, total):
        if done == total:
            mine = {"sku": "NEW", "title": "Mine", "category": "mug", "price": "1.00"}
            for request in (("patch", f"/api/products/{tee.pk}/", {"title": "Mine"}), ("post", "/api/products/", mine),
                            ("delete", f"/api/products/{tee.pk}/")):
                answers.append(requesting(merchant, *request).result(timeout=10))

    assert importer.run_import(job, progress=write_once_both_rows_are_written).state == "done"
    assert [(answer.status_code, answer.json()) for answer in answers] == [
        (409, {"detail": catalog_api.ProductBusy.default_detail})] * 3
    assert list(Product.objects.values_list("sku", "title")) == [("TEE", "Tee renamed"), ("NEW", "New")]


def test_a_full_sync_spares_a_product_the_api_added_while_it_ran(merchant, api, media):
    for sku in ("A", "B", "C", "D", "E"):
        ProductFactory(merchant=merchant, sku=sku)
    job = upload(api, HEADER + "".join(f"{sku},{sku},,mug,5,red.png\n" for sku in "ABCD"), {"red.png": RED},
                 full_sync="true")
    added = []

    def add_one_while_rows_are_checked(done, total):
        if not added:  # the listed products were counted; nothing is unlisted yet
            added.append(requesting(merchant, "post", "/api/products/", {"sku": "NEW", "title": "New",
                                                                          "category": "mug", "price": "2.00"}).result())

    job = importer.run_import(job, progress=add_one_while_rows_are_checked)

    assert added[0].status_code == 201
    assert (job.state, job.products_unlisted, job.unlisted_skus) == ("done", 1, ["E"])
    assert dict(Product.objects.values_list("sku", "listed")) == {"A": True, "B": True, "C": True, "D": True,
                                                                  "E": False, "NEW": True}


def test_a_full_sync_spares_the_products_listed_while_the_upload_waited(merchant, api, media):
    """The file is what the merchant listed when they sent it; a product listed after that was not left out of it."""
    for sku in ("A", "B", "E"):
        ProductFactory(merchant=merchant, sku=sku)
    ProductFactory(merchant=merchant, sku="OLD", listed=False)
    job = upload(api, HEADER + "A,A,,mug,5,red.png\nB,B,,mug,5,red.png\n", {"red.png": RED}, full_sync="true")
    # While the upload waits for a worker: a product added with the API, one listed again in the admin.
    assert api.post("/api/products/", {"sku": "NEW", "title": "New", "category": "mug", "price": "2.00"},
                    format="json").status_code == 201
    Product.objects.filter(sku="OLD").update(listed=True)

    job = importer.run_import(job)

    assert (job.state, job.products_unlisted, job.unlisted_skus) == ("done", 1, ["E"])
    assert job.message == ("2 rows imported, 2 images queued for embedding, 1 product unlisted "
                           "(2 listed after the upload was received stay listed)")
    assert dict(Product.objects.values_list("sku", "listed")) == {"A": True, "B": True, "E": False, "NEW": True,
                                                                  "OLD": True}


def test_a_full_sync_counts_in_what_the_uploads_sent_before_it_list(merchant, api, media):
    """The merchant sent an update, then a full sync, before either ran: the update's new product is one the sync
    leaves out on purpose (it was sent after), so it goes; a product the API added meanwhile stays."""
    for sku in "ABCDE":
        ProductFactory(merchant=merchant, sku=sku)
    update = upload(api, HEADER + "OLDNEW,Old new,,mug,5,red.png\n", {"red.png": RED})
    sync = upload(api, HEADER + "".join(f"{sku},{sku},,mug,5,red.png\n" for sku in "ABCDE"), {"red.png": RED},
                  full_sync="true")
    assert api.post("/api/products/", {"sku": "APINEW", "title": "New", "category": "mug", "price": "2.00"},
                    format="json").status_code == 201

    assert importer.run_import(update).state == "done"
    sync = importer.run_import(sync)

    assert (sync.state, sync.unlisted_skus) == ("done", ["OLDNEW"])
    assert sync.message.endswith("1 product unlisted (1 listed after the upload was received stay listed)")
    assert dict(Product.objects.values_list("sku", "listed")) == {**dict.fromkeys("ABCDE", True), "OLDNEW": False,
                                                                  "APINEW": True}


def test_a_full_sync_saved_without_the_listed_skus_unlists_every_product_the_file_leaves_out(merchant, api, media):
    """A job queued by a version that did not keep them runs as it would have."""
    for sku in ("A", "E"):
        ProductFactory(merchant=merchant, sku=sku)
    job = upload(api, HEADER + "A,A,,mug,5,red.png\n", {"red.png": RED}, full_sync="true", confirm_unlist="2")
    ProductFactory(merchant=merchant, sku="NEW")
    job.listed_at_upload.delete(save=True)

    assert importer.run_import(job).unlisted_skus == ["E", "NEW"]


def test_the_command_given_a_merchant_key_with_a_leading_zero_waits_for_that_merchants_import(
        merchant, media, tmp_path, capsys, test_database_url):
    """It kept the key as given: "03" took another lock than the workers' "3", and both imports ran at once."""
    (tmp_path / "c.csv").write_text(HEADER + "TEE,Tee,,t-shirt,5,red.png\n")
    (tmp_path / "i.zip").write_bytes(zipped({"red.png": RED}).getvalue())
    holder = hold_import_lock(test_database_url, merchant)  # a worker importing for the merchant
    threading.Timer(1.5, holder.close).start()
    started = time.monotonic()
    call_command("p2w_import", str(tmp_path / "c.csv"), archive=str(tmp_path / "i.zip"), merchant=f"0{merchant.pk}")

    assert time.monotonic() - started >= 1.5
    assert f"merchant '{merchant.pk}' has another import running; waiting for it to end" in capsys.readouterr().err
    assert ImportJob.objects.values_list("merchant_key", "state").get() == (str(merchant.pk), "done")


# The product API with itself

def test_two_edits_of_one_product_at_once_keep_both(merchant, api, monkeypatch):
    """Each PATCH saved the whole row it had read: the later one wrote back the title the other had changed."""
    tee = ProductFactory(merchant=merchant, title="Tee", price=Decimal("19.99"))
    stop = Stop()
    monkeypatch.setattr(ProductSerializer, "validate", lambda self, attrs: stop() or attrs)
    cheaper = requesting(merchant, "patch", f"/api/products/{tee.pk}/", {"price": "5.00"})
    stop.wait()  # read, not written

    assert api.patch(f"/api/products/{tee.pk}/", {"title": "Renamed"}, format="json").status_code == 200
    stop.go()

    assert cheaper.result().status_code == 200
    assert Product.objects.values_list("title", "price").get(pk=tee.pk) == ("Renamed", Decimal("5.00"))


def test_one_sku_added_by_two_requests_at_once_is_a_400_for_the_second(merchant, api, stop_at):
    stop = stop_at(post_save, Product)
    values = {"sku": "TEE", "title": "Tee", "category": "t-shirt", "price": "3.00"}
    first = requesting(merchant, "post", "/api/products/", values)
    stop.wait()  # added, not committed: the second request's check does not see it
    second = requesting(merchant, "post", "/api/products/", values)
    wait_until_a_writer_waits_for_a_lock()
    stop.go()

    assert first.result().status_code == 201
    answer = second.result()
    assert (answer.status_code, answer.json()) == (400, {"sku": [DUPLICATE_SKU]})
    assert Product.objects.filter(merchant=merchant).count() == 1


# Embedding workers and the writers of images

@pytest.fixture
def embedding_stopped(merchant, api, media, monkeypatch):
    """``embedding_stopped(where)``: the image of product TEE (red) being embedded on a thread, stopped ``where``:
    ``"read"`` before its file is read, ``"store"`` after (its vector is computed, not stored). Returns
    ``(worker, stop, embedding)``."""

    def start(where):
        indexing.register_model()
        job = importer.run_import(upload(api, HEADER + "TEE,Tee,,t-shirt,5,red.png\n", {"red.png": RED}))
        assert job.state == "done"
        embedding = ImageEmbedding.objects.get(state="pending")
        stop = Stop()
        if where == "read":
            read = indexing._read_or_refusal
            monkeypatch.setattr(indexing, "_read_or_refusal", lambda image: stop() or read(image))
        else:
            embedder = get_embedder()
            embed = embedder.embed_images
            monkeypatch.setattr(embedder, "embed_images", lambda images, **kwargs: stop() or embed(images, **kwargs))
        worker = Writer(lambda: indexing.embed_pending(embedding.model_id, [embedding.pk]))
        stop.wait()
        return worker, stop, embedding

    return start


@pytest.mark.parametrize("where", ["read", "store"])
def test_an_image_replaced_while_a_worker_embeds_it_is_embedded_from_its_new_file(embedding_stopped, api, where):
    """The worker stored the old picture's vector (or, its file deleted, marked the image failed): the new one's
    task then found the row ready (or failed) and left it so."""
    worker, stop, embedding = embedding_stopped(where)
    replaced = importer.run_import(upload(api, HEADER + "TEE,Tee,,t-shirt,5,blue.png\n", {"blue.png": BLUE}))
    assert list(replaced.images.values_list("pk", flat=True)) == [embedding.image_id]  # queued again, committed
    stop.go()

    assert worker.result() == 0
    assert ImageEmbedding.objects.values_list("state", "error").get(pk=embedding.pk) == ("pending", "")
    assert indexing.embed_pending(embedding.model_id, [embedding.pk]) == 1  # the task the import sent
    image = ProductImage.objects.get(pk=embedding.image_id)
    assert image.sha256 == sha256(BLUE)
    local = get_embedder().embed_images([load_image(image.file.path, max_bytes=10**7, max_pixels=10**7)])  # [1, dim]
    stored = np.array(ImageEmbedding.objects.get(pk=embedding.pk).vector, dtype=np.float32)
    assert float(local[0] @ stored) > 0.999


def test_a_product_deleted_in_the_admin_while_a_worker_embeds_its_image_leaves_nothing(embedding_stopped, admin_client):
    worker, stop, embedding = embedding_stopped("store")
    product = ProductImage.objects.get(pk=embedding.image_id).product
    answer = admin_client.post(f"/admin/catalog/product/{product.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    stop.go()

    assert worker.result() == 0
    assert (Product.objects.count(), ProductImage.objects.count(), ImageEmbedding.objects.count()) == (0, 0, 0)

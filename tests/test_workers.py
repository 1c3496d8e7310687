"""Real Celery worker processes over real Redis and PostgreSQL: embedding, crashes, query encoding."""

import time

import numpy as np
import pytest
from django.db import transaction
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.embedders import get_embedder
from p2w_search.imaging import load_image
from p2w_search.models import EmbeddingModel, ImageEmbedding
from tests.conftest import wait_for
from tests.factories import ProductFactory, ProductImageFactory, png

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def add_images(colours):
    """Create products with one image each, committed as an upload would be: the commit queues them."""
    with transaction.atomic():
        return [ProductImageFactory(product=ProductFactory(), data=png(colour)) for colour in colours]


def states():
    return sorted(ImageEmbedding.objects.values_list("state", flat=True))


def test_worker_embeds_queued_images_and_marks_broken_ones_failed(start_worker):
    start_worker()
    indexing.register_model()
    images = add_images([(200, 10, 10), (10, 200, 10), (10, 10, 200)])
    broken = ProductImageFactory(data=png()[:70])  # truncated PNG, as a file damaged in storage

    wait_for(lambda: "pending" not in states(), message="all images embedded")

    ready = {row.image_id: row for row in ImageEmbedding.objects.filter(state="ready")}
    assert sorted(ready) == sorted(image.pk for image in images)
    local = get_embedder().embed_images([load_image(image.file.path, max_bytes=10**7, max_pixels=10**7) for image in images])
    stored = np.array([ready[image.pk].vector for image in images], dtype=np.float32)
    assert (np.sum(local * stored, axis=1) > 0.999).all()  # the worker's vectors, through halfvec
    failed = ImageEmbedding.objects.get(image=broken)
    assert failed.state == "failed"
    assert failed.error == "image data is truncated or corrupt"


def test_first_upload_registers_the_default_model_on_a_worker(start_worker):
    start_worker()
    assert not EmbeddingModel.objects.exists()
    add_images([(120, 120, 0), (0, 120, 120)])

    wait_for(lambda: states() == ["ready", "ready"], message="model registered and images embedded")

    model = EmbeddingModel.objects.get()
    assert model.state == "serving" and model.architecture == "p2w-test-tiny"


def test_images_of_a_worker_killed_mid_batch_end_ready_once(start_worker):
    slow = start_worker(env={"P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder",
                             "P2W_TEST_EMBED_DELAY": "30"})
    indexing.register_model()
    images = add_images([(200, 100, 0), (0, 100, 200), (90, 90, 90), (10, 200, 10)])  # one batch of four
    # embed_pending counts the attempt before it embeds: the worker is now inside the batch.
    wait_for(lambda: ImageEmbedding.objects.filter(attempts=1).count() == 4, message="batch started")
    slow.kill()
    assert states() == ["pending"] * 4

    start_worker()
    assert indexing.sweep_pending(older_than=0) == 4  # what the periodic sweep does after SWEEP_AFTER
    wait_for(lambda: states() == ["ready"] * 4, message="re-queued batch ready")

    rows = ImageEmbedding.objects.filter(image__in=images)
    assert sorted(rows.values_list("attempts", flat=True)) == [2, 2, 2, 2]  # killed once, embedded once
    assert rows.count() == 4 and all(row.vector is not None for row in rows)


def test_text_search_encodes_on_the_query_worker(start_worker, settings):
    start_worker(queues=[settings.P2W_SEARCH["BULK_QUEUE"]])
    start_worker(queues=[settings.P2W_SEARCH["QUERY_QUEUE"]])
    indexing.register_model()
    add_images([(200, 10, 10), (10, 200, 10), (10, 10, 200)])
    wait_for(lambda: states() == ["ready"] * 3, message="catalog embedded")
    client = APIClient()
    local = client.get("/api/search/text/", {"q": "a green mug"}).json()

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker"}
    remote = client.get("/api/search/text/", {"q": "a green mug"})

    assert remote.status_code == 200, remote.content
    assert [r["product"]["id"] for r in remote.json()["results"]] == [r["product"]["id"] for r in local["results"]]
    assert [r["score"] for r in remote.json()["results"]] == pytest.approx([r["score"] for r in local["results"]],
                                                                          abs=1e-5)


def test_search_answers_503_when_no_worker_listens(settings):
    indexing.register_model()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 1.0,
                           "QUERY_QUEUE": "p2w_query_nobody_listens"}
    started = time.monotonic()
    response = APIClient().get("/api/search/text/", {"q": "red"})
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["detail"].startswith("No search worker answered within 1 s")
    assert elapsed < 5


def test_composed_search_runs_on_the_query_worker(start_worker, settings):
    start_worker()
    indexing.register_model()
    images = add_images([(200, 10, 10), (10, 200, 10), (10, 10, 200)])
    wait_for(lambda: states() == ["ready"] * 3, message="catalog embedded")
    client = APIClient()
    payload = {"product": images[0].product_id, "text": "in green"}
    local = client.post("/api/search/composed/", payload, format="json").json()

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker"}
    remote = client.post("/api/search/composed/", payload, format="json")
    too_long = client.post("/api/search/composed/", {**payload, "text": "very " * 40}, format="json")

    assert remote.status_code == 200, remote.content
    assert [r["score"] for r in remote.json()["results"]] == pytest.approx([r["score"] for r in local["results"]],
                                                                          abs=1e-5)
    assert too_long.status_code == 400 and "tokens" in too_long.json()["text"][0]


def test_catalog_upload_is_imported_and_embedded_by_workers(start_worker, django_user_model):
    import io
    import zipfile

    from rest_framework.authtoken.models import Token

    from tests.factories import MerchantFactory

    start_worker()
    indexing.register_model()
    merchant = MerchantFactory(user=django_user_model.objects.create_user("acme"))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.png", png((200, 0, 0)))
        z.writestr("b.png", png((0, 0, 200)))
    archive.seek(0)
    archive.name = "images.zip"
    manifest = io.BytesIO(b"sku,title,category,price,images\nA,Tee,t-shirt,5,a.png\nB,Mug,mug,7,b.png;a.png\n")
    manifest.name = "catalog.csv"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")

    response = client.post("/api/imports/", {"manifest": manifest, "archive": archive}, format="multipart")
    assert response.status_code == 202 and response.json()["state"] == "queued"

    done = wait_for(lambda: (lambda p: p if p["images_embedded"] == 3 else None)(client.get(response.json()["url"]).json()),
                    message="upload imported and embedded")
    assert (done["state"], done["rows_accepted"], done["images_total"], done["images_failed"]) == ("done", 2, 3, 0)

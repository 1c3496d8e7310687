"""Real Celery worker processes over real Redis and PostgreSQL: embedding, crashes, query encoding."""

import time

import numpy as np
import pytest
import redis
from django.db import transaction
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.embedders import get_embedder
from p2w_search.imaging import load_image
from p2w_search.models import EmbeddingModel, ImageEmbedding, WorkerProcess
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
    local = get_embedder().embed_images([load_image(image.file.path, max_bytes=10**7, max_pixels=10**7)
                                         for image in images])
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


def test_images_of_a_worker_killed_mid_batch_end_ready_once(start_worker, settings):
    bulk = settings.P2W_SEARCH["BULK_QUEUE"]
    slow = start_worker(env={"P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder",
                             "P2W_TEST_EMBED_DELAY": "30"})
    spare = start_worker(queues=[f"{bulk}-spare"], wait=False)  # the next worker, ready when the first is gone
    indexing.register_model()
    images = add_images([(200, 100, 0), (0, 100, 200), (90, 90, 90), (10, 200, 10)])  # one batch of four
    # embed_pending counts the attempt before it embeds: the worker is now inside the batch.
    wait_for(lambda: ImageEmbedding.objects.filter(attempts=1).count() == 4, message="batch started")
    slow.kill()
    assert states() == ["pending"] * 4

    spare.wait_ready().consume(bulk)
    assert indexing.sweep_pending(older_than=0) == 4  # what the periodic sweep does after SWEEP_AFTER
    wait_for(lambda: states() == ["ready"] * 4, message="re-queued batch ready")

    rows = ImageEmbedding.objects.filter(image__in=images)
    assert sorted(rows.values_list("attempts", flat=True)) == [2, 2, 2, 2]  # killed once, embedded once
    assert rows.count() == 4 and all(row.vector is not None for row in rows)


def test_text_search_encodes_on_the_query_worker(start_worker, settings):
    queues = [settings.P2W_SEARCH["BULK_QUEUE"], settings.P2W_SEARCH["QUERY_QUEUE"]]
    for worker in [start_worker(queues=[queue], wait=False) for queue in queues]:  # one worker a queue
        worker.wait_ready()
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

    done = wait_for(lambda: (lambda p: p if p["images_embedded"] == 3 else None)(
        client.get(response.json()["url"]).json()), message="upload imported and embedded")
    assert (done["state"], done["rows_accepted"], done["images_total"], done["images_failed"]) == ("done", 2, 3, 0)


def test_two_full_syncs_of_one_merchant_never_interleave(start_worker, settings, django_user_model):
    """Two bulk workers, two full syncs of one merchant, and the sweep sending both again while they run.

    Each import takes a few seconds (the rows are slowed down), so without the merchant's
    lock the two would run at once and each would unlist what it saw before the other
    committed: the shop would end with a mix of both catalogs. With it, they run one after
    the other, each once, and the shop ends with exactly the catalog of the one that ran last.
    """
    from rest_framework.authtoken.models import Token

    from p2w_search import tasks
    from p2w_search.models import ImportJob
    from shop_demo.catalog.models import Product
    from tests.factories import MerchantFactory, catalog_upload

    slow = {"P2W_TEST_IMPORT_SERIALIZER": "tests.slow_rows.SlowProductImportSerializer", "P2W_TEST_ROW_DELAY": "0.4"}
    for worker in [start_worker(queues=[settings.P2W_SEARCH["BULK_QUEUE"]], env=slow, wait=False) for _ in range(2)]:
        worker.wait_ready()
    merchant = MerchantFactory(user=django_user_model.objects.create_user("acme"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")
    catalogs = {"A": {f"A-{n}": [f"a{n}.png"] for n in range(5)}, "B": {f"B-{n}": [f"b{n}.png"] for n in range(5)}}
    jobs = {name: catalog_upload(client, rows, full_sync="true", confirm_unlist="5")["id"]
            for name, rows in catalogs.items()}
    wait_for(lambda: ImportJob.objects.filter(state="running").exists(), message="an import running")
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SWEEP_AFTER": 0}
    tasks.sweep_pending()  # sends both jobs again, as beat would for jobs that look stuck
    wait_for(lambda: ImportJob.objects.filter(state="done").count() == 2, timeout=90, message="both imports done")

    first, last = sorted(ImportJob.objects.filter(pk__in=jobs.values()), key=lambda job: job.started_at)
    assert first.ended_at <= last.started_at, "the two imports of one merchant ran at the same time"
    assert [(job.rows_accepted, job.rows_rejected) for job in (first, last)] == [(5, 0), (5, 0)]
    winner = next(name for name, pk in jobs.items() if pk == last.pk)
    listed = set(Product.objects.filter(merchant=merchant, listed=True).values_list("sku", flat=True))
    assert listed == set(catalogs[winner]) and last.products_unlisted == 5


def test_a_killed_workers_batch_is_redelivered_to_another_worker(start_worker, settings):
    """Redis hands a message that was never acknowledged to another worker once its visibility timeout passed.

    No sweep runs here: the task acknowledges late, so the killed worker's message is still
    Redis's to give again, with the same task id, and the new worker claims the rows again.
    (tests/test_workers.py's sweep test is the guard for a message that is lost instead.)
    """
    redelivery = {"P2W_VISIBILITY_TIMEOUT": "3"}
    # The Procfile's bulk worker runs the prefork pool, which acknowledges a message when its
    # child accepts it unless the task acknowledges late.
    slow = start_worker(env={"P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder",
                             "P2W_TEST_EMBED_DELAY": "60", **redelivery}, pool="prefork")
    indexing.register_model()
    images = add_images([(200, 100, 0), (0, 100, 200), (90, 90, 90)])
    wait_for(lambda: ImageEmbedding.objects.filter(attempts=1).count() == 3, message="batch started")
    slow.kill()
    # The worst moment to die: while holding the lock of kombu's look for such messages, which then stays
    # for its expiry (tests/settings.py). The test session's own killed workers can leave it so at random.
    broker = redis.Redis(unix_socket_path=settings.REDIS_URL.removeprefix("redis+socket://"))
    expiry = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("unacked_mutex_expire", 300)  # kombu's default
    broker.set("unacked_mutex", "the killed worker", ex=expiry)
    start_worker(env=redelivery)
    wait_for(lambda: states() == ["ready"] * 3, timeout=60, message="the batch redelivered and embedded")
    rows = ImageEmbedding.objects.filter(image__in=images)
    assert sorted(rows.values_list("attempts", flat=True)) == [2, 2, 2]  # killed once, embedded once


def test_duplicate_messages_on_two_workers_embed_each_image_once(start_worker, settings):
    """The same batch sent twice and taken by two workers at the same moment: one claims the rows, the other none."""
    from p2w_search import dispatch

    slow = {"P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder", "P2W_TEST_EMBED_DELAY": "3"}
    workers = [start_worker(queues=[settings.P2W_SEARCH["BULK_QUEUE"]], env=slow, wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    model = indexing.register_model()
    images = add_images([(200, 100, 0), (0, 100, 200), (90, 90, 90)])  # its commit sends the batch once
    ids = sorted(ImageEmbedding.objects.filter(image__in=images).values_list("pk", flat=True))
    dispatch.send(dispatch.EMBED_BATCH, args=(model.pk, ids))  # and a duplicate, as a resend would
    wait_for(lambda: states() == ["ready"] * 3, message="the batch embedded")
    time.sleep(1)  # both messages were taken at once (each worker takes one); the second one is done too
    assert sorted(ImageEmbedding.objects.values_list("attempts", flat=True)) == [1, 1, 1]
    assert sum("succeeded" in worker.log() for worker in workers) == 2  # both workers ran a copy of the batch


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_worker_loads_its_models_and_reports_ready_before_its_first_task(start_worker, settings, pool):
    """A restarted worker used to load its model on its first task, seconds after it said it was ready."""
    from p2w_search import workers

    model = indexing.register_model()
    query_queue = settings.P2W_SEARCH["QUERY_QUEUE"]
    worker = start_worker(queues=[query_queue], pool=pool)
    process = wait_for(lambda: workers.alive(query_queue).first(), message="the worker's heartbeat")
    assert (process.loaded_models, process.device, process.tasks) == ([model.key], "cpu", 0)
    assert process.started_at <= process.ready_at <= process.seen_at
    # The solo pool warms up before Celery names the worker: its first, nameless beat is replaced, not left to
    # look like a process that stopped reporting.
    assert list(WorkerProcess.objects.values_list("hostname", flat=True)) == [worker.hostname]
    assert f"worker process {process.pid} ready with {model.key}" in worker.log()
    assert not workers.alive(settings.P2W_SEARCH["BULK_QUEUE"]).exists()


def test_queries_that_arrive_together_are_encoded_together(start_worker, settings):
    """The query worker's threads hand their queries to one batcher: one forward pass for those waiting."""
    from concurrent.futures import ThreadPoolExecutor

    from p2w_search import encoding, workers

    query_queue = settings.P2W_SEARCH["QUERY_QUEUE"]
    model = indexing.register_model()
    start_worker(queues=[query_queue], pool="threads", concurrency=8,
                 env={"P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder", "P2W_TEST_TEXT_DELAY": "0.5"})
    process = wait_for(lambda: workers.alive(query_queue).first(), message="the threads worker's heartbeat")
    assert process.loaded_models == [model.key] and "@" in process.hostname  # warmed up in the main process
    texts = [f"a {colour} mug" for colour in ("red", "green", "blue", "black", "white", "pink", "grey", "gold")]
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda text: encoding.dispatch.ask(encoding.dispatch.ENCODE_QUERY, args=(model.pk, encoding.TEXT, text),
                                               queue=query_queue, timeout=30), texts))
    # The first text goes alone; the others arrive while it is encoded (0.5 s) and go together.
    assert sorted(answer["batch"] for answer in answers)[-1] >= 4
    alone = [encoding.encode_locally(model.pk, encoding.TEXT, text) for text in texts]
    assert np.allclose([answer["vector"] for answer in answers], alone, atol=1e-5)


def test_the_files_of_an_import_whose_worker_was_killed_are_swept_and_the_rerun_keeps_its_own(
        start_worker, settings, tmp_path, django_user_model):
    """A bulk worker SIGKILLed after an import's first chunk wrote its files, before the commit: no row
    refers to them. The import runs again on another worker; the daily sweep deletes exactly the dead
    attempt's files, and every file the committed rows refer to stays."""
    from datetime import timedelta
    from pathlib import Path

    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from p2w_search import orphans, tasks
    from p2w_search.models import ImportJob, ProductImage
    from tests.factories import MerchantFactory, catalog_upload

    media = tmp_path / "media"
    settings.MEDIA_ROOT = media
    bulk = settings.P2W_SEARCH["BULK_QUEUE"]
    env = {"P2W_TEST_MEDIA_ROOT": str(media)}
    slow_rows = {"P2W_TEST_IMPORT_SERIALIZER": "tests.slow_rows.SlowProductImportSerializer",
                 "P2W_TEST_ROW_DELAY": "0.05"}
    slow = start_worker(queues=[bulk], env={**env, **slow_rows})
    spare = start_worker(queues=[f"{bulk}-spare"], env=env, wait=False)
    merchant = MerchantFactory(user=django_user_model.objects.create_user("acme"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")
    rows = {f"A-{n:03d}": [f"a{n}.png"] for n in range(150)}  # two chunks: 100 rows, then 50
    job = catalog_upload(client, rows)["id"]

    def files():
        return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())

    wait_for(lambda: len(files()) == 100, timeout=90, message="the first chunk's files written")
    slow.kill()  # during the second chunk's rows: nothing committed
    dead = files()
    assert ImportJob.objects.get(pk=job).state == "running" and not ProductImage.objects.exists()

    spare.wait_ready().consume(bulk)
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SWEEP_AFTER": 0}
    tasks.sweep_pending()  # sends the job again, as beat would for a job that looks stuck
    wait_for(lambda: ImportJob.objects.get(pk=job).state == "done", timeout=90, message="the import done again")
    kept = sorted(ProductImage.objects.values_list("file", flat=True))
    assert len(kept) == 150 and not set(kept) & set(dead)
    assert tasks.sweep_orphan_files()["images"] == 0  # an hour has not passed

    later = timezone.now() + orphans.ORPHAN_MIN_AGE + timedelta(minutes=1)
    assert orphans.remove_orphan_files(now=later)["images"] == 100
    assert files() == kept and all((media / name).is_file() for name in kept)
    assert not Path(media / dead[0]).exists()

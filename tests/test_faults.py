"""Faults where nothing may be lost: Redis and PostgreSQL restarting under real workers.

PostgreSQL is the source of truth (p2w_search/indexing.py): what a restart takes from the
queue, the periodic sweep queues again; what it takes from a task, the task's retry redoes.
"""

import base64
import json
import time

import pytest
from django.db import connection, transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from p2w_search import indexing, tasks
from p2w_search.models import EmbeddingModel, ImageEmbedding, ImportJob, ProductImage
from shop_demo.catalog.models import Product
from tests.conftest import wait_for
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory, catalog_upload, png
from tests.faults import Beat, RedisServer, celery_broker, crash_postgres_backends, wait_for_database

pytestmark = pytest.mark.django_db(transaction=True)

TASK_BATCH_SIZE = 3
SLOW_WORKER = {
    "DJANGO_SETTINGS_MODULE": "tests.fault_settings",
    "P2W_TEST_TASK_BATCH_SIZE": str(TASK_BATCH_SIZE),
    "P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder",
    "P2W_TEST_EMBED_DELAY": "3",  # seconds per batch: long enough to act while one is in hand
}

# Two parts of one catalog, as CSV rows and the images they name: sku -> image names.
FIRST_PART = {"TEE-1": ["tee-1.png"], "TEE-2": ["tee-2.png", "tee-2b.png"], "MUG-1": ["mug-1.png"],
              "MUG-2": ["mug-2.png", "mug-2b.png"], "CAP-1": ["cap-1.png"], "CAP-2": ["cap-2.png"]}  # 8 images, 3 tasks
SECOND_PART = {"BAG-1": ["bag-1.png", "bag-1b.png"], "BAG-2": ["bag-2.png"]}  # 3 images, 1 task


@pytest.fixture
def private_redis(tmp_path_factory):
    """A Redis of this test's own, which this process's Celery app uses too; stopped afterwards."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    with celery_broker(server.url):
        yield server
    server.stop()


@pytest.mark.worker
def test_an_upload_survives_a_redis_restart_that_loses_its_messages(private_redis, start_worker, tmp_path,
                                                                     test_database_url, settings,
                                                                     django_user_model):
    """Redis dies mid-upload, losing every queued and unacknowledged task, and comes back empty.

    A merchant uploads a catalog in two parts while a worker and beat run; the worker imports
    the first and is inside its first embedding batch when the second is accepted. Redis is
    then killed (its queue held the first part's other two batches and the second part's
    import), stays down while the worker finishes its batch, and starts again on the same
    socket with nothing. Beat's sweep must queue the lost import and the lost batches again
    from PostgreSQL: both jobs end done, every product and image exists once, every image is
    embedded once (attempts 1) under the serving model, none failed.
    """
    env = {**SLOW_WORKER, "REDIS_URL": private_redis.url, "DATABASE_URL": test_database_url,
           "P2W_SWEEP_AFTER": "4", "P2W_SWEEP_EVERY": "1"}
    beat = Beat(env, log_dir=tmp_path)
    try:
        worker = start_worker(env=env)
        model = indexing.register_model()
        merchant = MerchantFactory(user=django_user_model.objects.create_user("acme"))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")

        first = catalog_upload(client, FIRST_PART)
        # embed_pending counts the attempt before it embeds: the worker is now inside a batch.
        wait_for(lambda: ImageEmbedding.objects.filter(attempts=1).count() == TASK_BATCH_SIZE,
                 message="first import done and its first batch started")
        in_hand = set(ImageEmbedding.objects.filter(attempts=1).values_list("pk", flat=True))
        second = catalog_upload(client, SECOND_PART)
        waiting = private_redis.client().llen(settings.P2W_SEARCH["BULK_QUEUE"])
        assert waiting >= 3, "the queue should hold two embedding batches and an import"  # what the crash loses

        private_redis.crash()
        wait_for(lambda: ImageEmbedding.objects.filter(pk__in=in_hand, state="ready").count() == len(in_hand),
                 timeout=60, message="the batch in hand finished while Redis was down")
        private_redis.start()

        images_total = sum(map(len, FIRST_PART.values())) + sum(map(len, SECOND_PART.values()))
        wait_for(lambda: ImageEmbedding.objects.filter(state="ready").count() == images_total
                 and ImportJob.objects.filter(state="done").count() == 2,
                 timeout=120, message="both parts imported and embedded after the restart")
        assert worker.process.poll() is None, "the worker should have reconnected, not exited"
    finally:
        beat.stop()

    jobs = {job["id"]: job for job in client.get("/api/imports/").json()["results"]}
    for part, rows in ((first, FIRST_PART), (second, SECOND_PART)):
        job = jobs[part["id"]]
        expected = sum(map(len, rows.values()))
        assert (job["state"], job["rows_total"], job["rows_accepted"], job["rows_rejected"], job["errors"]) == (
            "done", len(rows), len(rows), 0, [])
        assert (job["images_total"], job["images_embedded"], job["images_failed"]) == (expected, expected, 0)
    everything = {**FIRST_PART, **SECOND_PART}
    products = Product.objects.filter(merchant=merchant)
    assert sorted(products.values_list("sku", flat=True)) == sorted(everything)
    for product in products:
        assert ProductImage.objects.filter(product=product).count() == len(everything[product.sku])
    assert ProductImage.objects.count() == images_total
    embeddings = ImageEmbedding.objects.all()
    assert set(embeddings.values_list("model_id", flat=True)) == {model.pk}
    assert EmbeddingModel.objects.get(pk=model.pk).state == "serving"
    assert sorted(embeddings.values_list("image_id", flat=True)) == sorted(ProductImage.objects.values_list("pk",
                                                                                                          flat=True))
    assert list(embeddings.values_list("state", "attempts").distinct()) == [("ready", 1)]
    assert not embeddings.filter(vector__isnull=True).exists()


def test_an_import_that_commits_while_redis_is_down_ends_done_and_is_embedded_later(private_redis, settings,
                                                                                    django_user_model):
    """Redis dies while a worker imports an upload, so the import commits with no broker to send to.

    The import itself needs only PostgreSQL: the job must end done with its counts, its images
    pending (not failed, and the job not marked failed for a send that did not happen), and
    once Redis is back the sweep queues exactly those images. The worker's part runs here, as
    the task's body, so the moment of the outage is exact.
    """
    model = indexing.register_model()
    merchant = MerchantFactory(user=django_user_model.objects.create_user("acme"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")
    job_id = catalog_upload(client, SECOND_PART)["id"]

    private_redis.crash()
    assert tasks.run_import(job_id) == "done"

    job = ImportJob.objects.get(pk=job_id)
    assert (job.state, job.rows_accepted, job.rows_rejected, job.images.count()) == ("done", 2, 0, 3)
    rows = ImageEmbedding.objects.filter(image__import_jobs=job, model=model)
    assert list(rows.values_list("state", "attempts").distinct()) == [("pending", 0)]
    private_redis.start()
    assert indexing.sweep_pending(older_than=0) == 3
    sent = [json.loads(message) for message in private_redis.client().lrange(settings.P2W_SEARCH["BULK_QUEUE"], 0, -1)]
    assert [message["headers"]["task"] for message in sent] == ["p2w_search.tasks.embed_batch"]  # 3 < TASK_BATCH_SIZE
    (model_id, embedding_ids), _, _ = json.loads(base64.b64decode(sent[0]["body"]))  # args, kwargs, embed
    assert (model_id, sorted(embedding_ids)) == (model.pk, sorted(rows.values_list("pk", flat=True)))


@pytest.mark.worker
def test_embedding_survives_a_postgresql_crash_restart(nested_sessions_done, start_worker, settings):
    """The PostgreSQL server restarts while a worker is inside an embedding batch.

    Six images are queued as three tasks of two; while the worker embeds the first, a backend
    is killed, so the server ends every connection (the worker's and this process's) and runs
    crash recovery, refusing connections meanwhile. The worker's write fails; the task must
    retry on a new connection, and the next tasks too must reconnect: every image ends ready
    with one vector, the interrupted two after two attempts and the rest after one, none
    failed, and the same worker process did it all (no sweep runs here). Why a crash and not
    ``pg_ctl restart``: see ``crash_postgres_backends``. The restart ends every connection to
    the server, so the test shops' sessions, which share it, must have ended first.
    """
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "TASK_BATCH_SIZE": 2}
    worker = start_worker(env=SLOW_WORKER)
    indexing.register_model()
    with transaction.atomic():  # saved images are queued together when the transaction commits
        images = [ProductImageFactory(product=ProductFactory(), data=png((40 * n, 200 - 30 * n, 90))) for n in range(6)]
    wait_for(lambda: ImageEmbedding.objects.filter(attempts=1).count() == 2, message="first batch started")
    interrupted = sorted(ImageEmbedding.objects.filter(attempts=1).values_list("image_id", flat=True))

    killed = crash_postgres_backends(connection)
    assert killed, "the worker should hold a connection to the test database"
    wait_for_database(connection)

    wait_for(lambda: ImageEmbedding.objects.filter(state="ready").count() == 6, timeout=120,
             message="every image embedded after the restart")
    assert worker.process.poll() is None, "the worker should have reconnected, not exited"
    attempts = dict(ImageEmbedding.objects.values_list("image_id", "attempts"))
    assert attempts == {image.pk: 2 if image.pk in interrupted else 1 for image in images}
    assert list(ImageEmbedding.objects.values_list("state", flat=True).distinct()) == ["ready"]
    assert not ImageEmbedding.objects.filter(vector__isnull=True).exists()


def queued_tasks(redis, settings):
    """The names and args of the task messages waiting in the bulk queue of ``redis``."""
    messages = [json.loads(m) for m in redis.client().lrange(settings.P2W_SEARCH["BULK_QUEUE"], 0, -1)]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


def test_an_upload_sent_while_redis_is_down_is_accepted_and_imported_later(private_redis, settings,
                                                                         django_user_model):
    """The web process cannot reach Redis when a merchant uploads: 202 all the same, not a 500.

    The job is saved in PostgreSQL; once Redis is back, the sweep sends its import.
    """
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SWEEP_AFTER": 0}
    merchant = MerchantFactory(user=django_user_model.objects.create_user("acme"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")
    private_redis.crash()
    job_id = catalog_upload(client, SECOND_PART)["id"]
    assert ImportJob.objects.get(pk=job_id).state == "queued"

    private_redis.start()
    tasks.sweep_pending()  # the task's body, as beat would run it on a worker
    assert queued_tasks(private_redis, settings) == [("p2w_search.tasks.run_import", [job_id])]


def test_a_lost_model_start_is_sent_again_by_the_sweep(private_redis, settings):
    """The first images of a shop wait for a model; the start_model message was lost with Redis."""
    private_redis.crash()
    with transaction.atomic():
        ProductImageFactory(product=ProductFactory(), data=png())  # its commit sends start_model: lost
    private_redis.start()
    assert not EmbeddingModel.objects.exists() and queued_tasks(private_redis, settings) == []
    tasks.sweep_pending()
    assert queued_tasks(private_redis, settings) == [("p2w_search.tasks.start_model", [])]
    indexing.register_model()
    private_redis.client().delete(settings.P2W_SEARCH["BULK_QUEUE"])
    tasks.sweep_pending()  # a model exists now: nothing more to start
    assert queued_tasks(private_redis, settings) == []


def test_the_admin_start_button_says_so_when_redis_is_down(private_redis, admin_client):
    """No sweep repeats this send: the admin must hear at once that it did not go out (it was a 500)."""
    private_redis.crash()
    response = admin_client.post("/admin/p2w_search/embeddingmodel/index/", {"action": "start", "alias": "next"},
                                 follow=True)
    assert response.status_code == 200
    assert "Could not start &#x27;next&#x27;: The task queue cannot be reached" in response.content.decode()


@pytest.mark.worker
def test_searches_answer_503_while_redis_is_down_and_recover_when_it_is_back(private_redis, start_worker, settings):
    """Redis dies under a serving shop: searches get a 503 with the reason within seconds, and the
    same web process answers again, without a restart, once Redis and the query worker are back."""
    from rest_framework.test import APIClient

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 5.0}
    start_worker(queues=[settings.P2W_SEARCH["QUERY_QUEUE"]], env={"REDIS_URL": private_redis.url})
    indexing.register_model()
    client = APIClient()
    assert client.get("/api/search/text/", {"q": "red"}).status_code == 200

    private_redis.crash()
    started = time.monotonic()
    down = client.get("/api/search/text/", {"q": "red"})
    assert down.status_code == 503 and down.json()["detail"].startswith("The task queue cannot be reached (")
    assert down["Retry-After"] == "30"
    assert time.monotonic() - started < 5

    private_redis.start()
    wait_for(lambda: client.get("/api/search/text/", {"q": "red"}).status_code == 200, timeout=60, interval=1,
             message="searches answered again")

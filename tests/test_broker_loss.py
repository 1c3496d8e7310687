"""The broker loses its messages: the sweep sends the waiting work again at once, not after SWEEP_AFTER.

The sweep keeps a marker in the broker's Redis (p2w_search/dispatch.py, ``lost_messages``); a
Redis that comes back without it has lost every message it held. Each test has a Redis of its
own, restarted empty as tests/test_faults.py restarts one, and calls the sweep task's body, as
beat would have a worker run it.
"""

import logging
import re
from datetime import timedelta

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from p2w_search import dispatch, indexing, tasks
from p2w_search.models import ImageEmbedding, ImportJob, ProductImage
from shop_demo.catalog.models import Product
from tests.conftest import wait_for
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory, catalog_upload, png, token_client
from tests.faults import RedisServer, celery_broker
from tests.test_faults import queued_tasks

pytestmark = pytest.mark.django_db(transaction=True)

EMBED, IMPORT = dispatch.EMBED_BATCH, dispatch.RUN_IMPORT
CATALOG = {"BAG-1": ["bag-1.png", "bag-1b.png"], "BAG-2": ["bag-2.png"]}  # 3 images
OTHER_CATALOG = {"CUP-1": ["cup-1.png"], "CUP-2": ["cup-2.png"]}  # 2 images
HOUR_AGO = timedelta(hours=1)


@pytest.fixture
def private_redis(tmp_path_factory, settings):
    """A Redis of this test's own without persistence, which this process's Celery app uses; stopped afterwards."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SWEEP_AFTER": 300.0, "TASK_BATCH_SIZE": 2}
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    with celery_broker(server.url):
        yield server
    server.stop()


@pytest.fixture
def merchant_client(django_user_model):
    return token_client(MerchantFactory(user=django_user_model.objects.create_user("acme")).user)


def add_images(count):
    """Images of new products, committed together: their commit sends ``embed_batch`` tasks of TASK_BATCH_SIZE."""
    with transaction.atomic():
        return [ProductImageFactory(product=ProductFactory(), data=png((60 * n, 200 - 50 * n, 90)))
                for n in range(count)]


def waiting(redis, settings):
    """The tasks waiting in the bulk queue of ``redis``, the first sent first (kombu pushes each at the list's head)."""
    return queued_tasks(redis, settings)[::-1]


def pending_ids():
    return sorted(ImageEmbedding.objects.filter(state="pending").values_list("pk", flat=True))


def has_marker(redis):
    return bool(redis.client().exists(dispatch.marker_key()))


def worker_results(worker, task):
    """The results a worker logged for ``task`` (Celery's "succeeded in ...: <result>" lines), in order."""
    return re.findall(rf"Task {re.escape(task)}\[[^]]+\] succeeded in [0-9.e-]+s: (.*)", worker.log_path.read_text())


@pytest.mark.worker
def test_after_redis_lost_its_messages_one_sweep_sends_the_waiting_work_again_and_a_worker_finishes_it(
        private_redis, merchant_client, start_worker, settings):
    """An upload queued, one import running, three images pending: all younger than SWEEP_AFTER when Redis
    restarts empty. The next sweep sends each again at once; a worker then imports both catalogs and embeds
    every image once."""
    model = indexing.register_model()
    assert tasks.sweep_pending() == 0 and has_marker(private_redis)  # the sweep before the restart
    queued_job = catalog_upload(merchant_client, CATALOG)["id"]
    running_job = catalog_upload(merchant_client, OTHER_CATALOG)["id"]
    # Its worker was inside the import when the machine went down with Redis: left "running".
    ImportJob.objects.filter(pk=running_job).update(state=ImportJob.State.RUNNING, started_at=timezone.now())
    add_images(3)
    rows = pending_ids()
    assert [name for name, _ in waiting(private_redis, settings)] == [IMPORT, IMPORT, EMBED, EMBED]

    private_redis.crash()
    private_redis.start()
    assert waiting(private_redis, settings) == [] and not has_marker(private_redis)

    assert tasks.sweep_pending() == 3
    assert waiting(private_redis, settings) == [
        (IMPORT, [queued_job]), (IMPORT, [running_job]), (EMBED, [model.pk, rows[:2]]), (EMBED, [model.pk, rows[2:]])]
    assert has_marker(private_redis)
    assert tasks.sweep_pending() == 0  # the marker is back: nothing is sent again before SWEEP_AFTER
    assert len(waiting(private_redis, settings)) == 4

    start_worker(env={"REDIS_URL": private_redis.url})
    images_total = 3 + sum(map(len, CATALOG.values())) + sum(map(len, OTHER_CATALOG.values()))
    wait_for(lambda: ImportJob.objects.filter(state="done").count() == 2
             and ImageEmbedding.objects.filter(state="ready").count() == images_total,
             timeout=90, message="both imports done and every image embedded")
    jobs = {job.pk: job for job in ImportJob.objects.all()}
    assert [(jobs[pk].rows_accepted, jobs[pk].rows_rejected, jobs[pk].images.count()) for pk in
            (queued_job, running_job)] == [(2, 0, 3), (2, 0, 2)]
    assert sorted(Product.objects.exclude(sku__startswith="SKU-").values_list("sku", flat=True)) == sorted(
        [*CATALOG, *OTHER_CATALOG])
    assert ProductImage.objects.count() == images_total
    assert list(ImageEmbedding.objects.values_list("state", "attempts").distinct()) == [("ready", 1)]


@pytest.mark.worker
def test_the_first_sweep_of_an_installation_sends_the_waiting_work_once_more_and_sets_the_marker(
        private_redis, merchant_client, start_worker, settings):
    """No marker yet, though nothing was lost: the waiting work is sent a second time, once, and the workers
    take each message twice without doing the work twice (an import runs once, an image is embedded once)."""
    model = indexing.register_model()
    job = catalog_upload(merchant_client, CATALOG)["id"]
    add_images(3)
    rows = pending_ids()
    sent = [(IMPORT, [job]), (EMBED, [model.pk, rows[:2]]), (EMBED, [model.pk, rows[2:]])]
    assert waiting(private_redis, settings) == sent and not has_marker(private_redis)

    assert tasks.sweep_pending() == 3
    assert waiting(private_redis, settings) == sent + sent and has_marker(private_redis)
    assert tasks.sweep_pending() == 0
    assert waiting(private_redis, settings) == sent + sent

    worker = start_worker(env={"REDIS_URL": private_redis.url, "DJANGO_SETTINGS_MODULE": "tests.fault_settings",
                               "P2W_TEST_TASK_BATCH_SIZE": "2"})
    wait_for(lambda: ImportJob.objects.filter(pk=job, state="done").exists()
             and ImageEmbedding.objects.filter(state="ready").count() == 6
             and len(worker_results(worker, EMBED)) == 6  # two batches, their duplicates, the import's two
             and len(worker_results(worker, IMPORT)) == 2,
             timeout=90, message="every message taken")
    assert worker_results(worker, IMPORT) == ["'done'", "None"]  # the second found the job ended
    # The two batches and the import's two embedded their rows; the duplicates found them ready and embedded nothing.
    assert sorted(worker_results(worker, EMBED)) == ["0", "0", "1", "1", "2", "2"]
    assert list(ImageEmbedding.objects.values_list("state", "attempts").distinct()) == [("ready", 1)]
    assert ProductImage.objects.count() == 6


def test_rows_a_worker_has_claimed_are_not_sent_again_when_the_broker_lost_its_messages(private_redis, settings):
    """A worker inside a batch when Redis restarted holds that batch still: freeing its claim would let a second
    worker embed the same images beside it. The other pending rows are sent again."""
    model = indexing.register_model()
    add_images(3)
    rows = pending_ids()
    ImageEmbedding.objects.filter(pk=rows[0]).update(claimed_by="a-task-in-hand", attempts=1)
    private_redis.crash()
    private_redis.start()

    assert tasks.sweep_pending() == 2
    assert waiting(private_redis, settings) == [(EMBED, [model.pk, rows[1:]])]
    assert ImageEmbedding.objects.get(pk=rows[0]).claimed_by == "a-task-in-hand"


def test_a_sweep_that_finds_the_marker_sends_only_what_waited_longer_than_sweep_after(
        private_redis, merchant_client, settings):
    """A Redis that kept its data (persistence) keeps the marker: the sweep is the one it always was."""
    model = indexing.register_model()
    assert tasks.sweep_pending() == 0
    young_job, old_job = (catalog_upload(merchant_client, rows)["id"] for rows in (CATALOG, OTHER_CATALOG))
    ImportJob.objects.filter(pk=old_job).update(updated_at=timezone.now() - HOUR_AGO)
    add_images(3)
    old_row = pending_ids()[0]
    ImageEmbedding.objects.filter(pk=old_row).update(queued_at=timezone.now() - HOUR_AGO)
    private_redis.client().delete(settings.P2W_SEARCH["BULK_QUEUE"])  # what follows is what the sweep sends

    assert tasks.sweep_pending() == 1
    assert waiting(private_redis, settings) == [(IMPORT, [old_job]), (EMBED, [model.pk, [old_row]])]
    assert young_job != old_job and has_marker(private_redis)


def test_a_sweep_with_redis_down_leaves_the_marker_alone_and_the_next_one_sends_the_work(private_redis, settings,
                                                                                        caplog):
    """Redis is down when the sweep looks for the marker: it cannot tell, says so, and goes on as usual; Redis
    comes back empty, and the next sweep finds the marker missing."""
    model = indexing.register_model()
    assert tasks.sweep_pending() == 0
    add_images(1)
    private_redis.crash()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="p2w_search.dispatch"):
        assert tasks.sweep_pending() == 0
    [record] = [r for r in caplog.records if r.name == "p2w_search.dispatch"]
    assert re.fullmatch(r"could not look for the broker's marker \(.+\); the sweep goes on as usual",
                        record.getMessage()), record.getMessage()

    private_redis.start()
    assert tasks.sweep_pending() == 1
    assert waiting(private_redis, settings) == [(EMBED, [model.pk, pending_ids()])]


def test_a_sweep_that_fails_while_sending_again_takes_the_marker_back(private_redis, settings, monkeypatch):
    """The database goes away mid-sweep after the marker was found missing: the retry must send the work again."""
    model = indexing.register_model()
    add_images(1)
    private_redis.client().delete(settings.P2W_SEARCH["BULK_QUEUE"])

    def database_gone():
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patch:
        patch.setattr(indexing, "queue_unclaimed", database_gone)
        with pytest.raises(OperationalError):
            tasks.sweep_pending()
    assert not has_marker(private_redis)
    assert tasks.sweep_pending() == 1
    assert waiting(private_redis, settings) == [(EMBED, [model.pk, pending_ids()])] and has_marker(private_redis)


def test_a_broker_that_is_not_redis_changes_nothing(private_redis, settings):
    """A shop on another broker (RabbitMQ; here kombu's in-memory one) gets the sweep it had: nothing young is sent."""
    indexing.register_model()
    add_images(1)
    with celery_broker("memory://"):
        with dispatch.lost_messages() as lost:
            assert lost is False
        assert tasks.sweep_pending() == 0

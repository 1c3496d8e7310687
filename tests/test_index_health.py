"""The index's health at a glance: search health, embedding rates and time left, workers, doctor's findings.

Search health is checked on both of its stores: Django's RedisCache on the tests' real Redis
(the demo's cache) and LocMemCache (the tests' default cache).
"""

import math
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.core.cache import cache, caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from p2w_search import doctor, index, indexing, rates, search_health, status, svg_charts, workers
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage, WorkerProcess
from tests.conftest import wait_for
from tests.factories import ProductFactory, ProductImageFactory, png
from tests.workers import REPO_DIR

PAGE = "/admin/p2w_search/embeddingmodel/index/"
BIN = 2 ** (1 / search_health.BINS_PER_OCTAVE)  # the ratio of one latency bin's bounds


@pytest.fixture(params=["redis", "locmem"])
def health_cache(request, settings):
    """Search health in a cache of its own for this test: the real Redis (RedisCache) or a LocMemCache."""
    prefix = f"p2w-health-test-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        config = {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                  "LOCATION": settings.REDIS_URL.replace("redis+socket://", "unix://"), "KEY_PREFIX": prefix}
    else:
        config = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": prefix}
    settings.CACHES = {**settings.CACHES, "p2w-health": config}
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": "p2w-health"}
    search_health._down_until.clear()
    yield request.param
    search_health.flush()  # while the alias is configured
    if request.param == "redis":
        client = caches["p2w-health"]._cache.get_client(None, write=True)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def window(minutes=5, endpoint="all", *, now=None):
    return search_health.summary(now=now)["windows"][minutes].get(endpoint)


# --- search health: what is recorded, and where it is kept ---

def test_latency_percentiles_are_those_of_the_answers_within_a_few_percent(health_cache):
    totals = np.random.default_rng(0).lognormal(mean=math.log(30), sigma=0.8, size=1500)  # ms
    now = time.time()
    for ms in totals:
        search_health.record("text", 200, {"encode": ms / 2, "sql": ms / 4, "total": ms}, now=now)
    search_health.record("text", 503, {"total": 10_000.0}, now=now)  # a 503 is counted, not timed

    stats = window(endpoint="text", now=now)
    assert stats["requests"] == 1501 and stats["ok"] == 1500 and stats["unavailable"] == 1
    assert stats["p50"] == pytest.approx(np.percentile(totals, 50), rel=0.03)
    assert stats["p95"] == pytest.approx(np.percentile(totals, 95), rel=0.03)
    assert stats["phases"]["sql"]["p95"] == pytest.approx(np.percentile(totals / 4, 95), rel=0.03)
    assert stats["phases"]["encode"]["mean"] == pytest.approx(np.mean(totals / 2), rel=1e-4)
    assert list(stats["phases"]) == ["encode", "sql", "total"]


def test_answers_are_counted_by_kind_over_the_last_5_and_60_minutes(health_cache):
    now = time.time()
    search_health.record("text", 200, {"total": 12.0}, now=now)
    search_health.record("text", 400, {"total": 1.0}, now=now)
    search_health.record("text", 429, {"total": 0.5}, now=now - 60)  # the minute before: still in the last 5
    search_health.record("text", 404, {"total": 2.0}, now=now - 5 * 60)  # 5 minutes before this one: the hour only
    search_health.record("composed", 503, {"total": 10_000.0}, now=now - 10 * 60)
    search_health.record("composed", 500, {}, now=now - 30 * 60)
    search_health.record("similar", 200, {"total": 5.0}, now=now - 61 * 60)  # out of the hour

    found = search_health.summary(now=now)
    recent, hour = found["windows"][5], found["windows"][60]
    assert set(recent) == {"all", "text"} and set(hour) == {"all", "text", "composed"}
    assert {k: recent["all"][k] for k in ("requests", "ok", "rejected", "throttled", "unavailable", "failed")} == {
        "requests": 3, "ok": 1, "rejected": 1, "throttled": 1, "unavailable": 0, "failed": 0}
    assert recent["text"]["p50"] == pytest.approx(12.0, rel=BIN - 1)  # answered searches only: not the 400's 1 ms
    assert (hour["composed"]["unavailable"], hour["composed"]["failed"], hour["composed"]["p95"]) == (1, 1, None)
    assert hour["all"]["requests"] == 6 and hour["text"]["rejected"] == 2
    series = found["series"]
    assert len(series) == search_health.KEEP_MINUTES
    assert [point["requests"] for point in series[-6:]] == [1, 0, 0, 0, 1, 2] and series[-11]["requests"] == 1
    assert series[-2]["p95"] is None and series[-1]["p95"] == pytest.approx(12.0, rel=BIN - 1)


def test_concurrent_answers_are_all_counted(health_cache):
    now = time.time()

    def searches():
        for _ in range(150):
            search_health.record("similar", 200, {"sql": 1.0, "total": 3.0}, now=now)

    threads = [threading.Thread(target=searches) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert window(endpoint="similar", now=now)["ok"] == 900


@pytest.mark.parametrize("health_cache", ["redis"], indirect=True)
def test_redis_keeps_one_hash_a_minute_that_expires_after_the_hour(health_cache):
    now = time.time()
    for status_code in (200, 200, 404, 429, 503):
        search_health.record("text", status_code, {"sql": 2.0, "total": 8.0}, now=now)
    search_health.flush()  # what the flusher thread does every second
    health = caches["p2w-health"]
    client = health._cache.get_client(None)
    keys = list(client.scan_iter(health.make_key("p2w:search-health:*")))
    assert len(keys) == 1
    assert (search_health.KEEP_MINUTES * 60) < client.ttl(keys[0]) <= (search_health.KEEP_MINUTES + 1) * 60
    # 4 status codes, one bin and one sum for each of the 2 phases: what a minute holds does not grow with traffic
    assert client.hlen(keys[0]) == 4 + 2 + 2


def test_a_cache_out_of_reach_never_fails_a_search_and_is_not_retried_at_once(shop, settings, tmp_path, caplog):
    settings.CACHES = {**settings.CACHES, "p2w-health": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"unix://{tmp_path}/nobody.sock"}}
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": "p2w-health"}
    search_health._down_until.clear()
    client = APIClient()
    answers = []
    try:
        for _ in range(2):  # two writes a second apart, as the flusher makes them
            answers += [client.get("/api/search/similar/", {"product": shop[0].pk}).status_code for _ in range(2)]
            search_health.flush()
    finally:
        search_health._down_until.clear()
    assert answers == [200] * 4
    warnings = [r for r in caplog.records if r.getMessage().startswith("search health not recorded")]
    assert len(warnings) == 1 and "nobody.sock" in warnings[0].getMessage()


def test_nothing_is_recorded_when_search_health_is_off(shop, settings, caplog):
    settings.CACHES = {**settings.CACHES, "p2w-health": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}}
    search_health.flush()  # what earlier tests recorded goes to their caches now, not during this test
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    cache.clear()
    assert APIClient().get("/api/search/similar/", {"product": shop[0].pk}).status_code == 200
    assert search_health.summary()["recording"] is False
    assert not [key for key in cache._cache if "search-health" in key]  # not in the default cache either
    assert not caplog.records
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": "p2w-health"}
    assert window() is None


# --- search health through the real search endpoints ---

@pytest.fixture
def shop(db, media):
    """Two products with an embedded image each."""
    products = [ProductImageFactory(data=png(colour)).product for colour in ((220, 20, 20), (20, 20, 220))]
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return products


def test_a_503_a_429_a_400_and_a_500_are_counted_and_shown(shop, health_cache, settings, admin_client, monkeypatch):
    client = APIClient(raise_request_exception=False)
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "2/min"}
    answers = [client.get("/api/search/similar/", {"product": shop[0].pk}).status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": None}
    assert client.get("/api/search/similar/", {"product": "twelve"}).status_code == 400
    # No worker listens on this queue: the search waits QUERY_TIMEOUT for its encoding, then answers 503.
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 1.0,
                           "QUERY_QUEUE": f"p2w_query_nobody_listens_{uuid.uuid4().hex[:6]}"}
    assert client.get("/api/search/text/", {"q": "a red mug"}).status_code == 503
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "local"}

    def broken(*args, **kwargs):
        raise RuntimeError("the ranking broke")

    monkeypatch.setattr(index, "nearest_products", broken)
    assert client.get("/api/search/similar/", {"product": shop[0].pk}).status_code == 500
    monkeypatch.undo()

    found = search_health.summary()["windows"][5]
    similar, text = found["similar"], found["text"]
    assert (similar["requests"], similar["ok"], similar["throttled"], similar["rejected"], similar["failed"]) == (
        5, 2, 1, 1, 1)
    assert (text["requests"], text["unavailable"], text["p95"]) == (1, 1, None)
    assert similar["p50"] is not None and set(similar["phases"]) == {"encode", "sql", "serialize", "total"}

    response = admin_client.get(PAGE)
    page = response.content.decode()
    row = re.search(r'<tr data-window="5" data-endpoint="similar">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'class="requests">5<', row) and re.search(r'class="throttled">1<', row)
    assert re.search(r'class="rejected">1<', row) and re.search(r'class="failed">1<', row)
    text_row = re.search(r'<tr data-window="5" data-endpoint="text">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'class="unavailable">1<', text_row)
    ids = [finding.id for finding in response.context["findings"]]
    assert {"p2w_search.H007", "p2w_search.H008", "p2w_search.H009"} <= set(ids)
    assert "1 of 6 searches in the last 5 minutes answered 503 (unavailable)." in page

    out = run_command("status")
    assert "searches in the last 5 min: 6 (2 answered, p50 " in out
    assert "; 4xx 1, 429 1, 503 1, 5xx 1)" in out


# --- embedding rate and time left ---

def add_rows(model, count, *, state="ready", at=None):
    """``count`` images in the index with an embedding row under ``model`` in ``state``, last updated ``at``."""
    product = ProductFactory()
    images = ProductImage.objects.bulk_create([
        ProductImage(product=product, file=f"p2w/images/known-{uuid.uuid4().hex}.png", sha256="x", position=i)
        for i in range(count)])
    vector = [1.0] + [0.0] * (model.dimensions - 1)
    rows = ImageEmbedding.objects.bulk_create([
        ImageEmbedding(image=image, model=model, state=state, queued_at=timezone.now(),
                       **({"vector": vector, "norm": 1.0} if state == "ready" else {})) for image in images])
    if at is not None:
        ImageEmbedding.objects.filter(pk__in=[row.pk for row in rows]).update(updated_at=at)
    return rows


def run_command(*args):
    from io import StringIO

    out = StringIO()
    call_command("p2w_index", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def known_run(db, settings):
    """A model being built: 10 batches of 8 images embedded 10 s apart, the last one now; 56 images to go.

    A worker embedding 8 images every 10 s embeds 0.8 images a second: the 56 left take 70 s.
    Rows that must not count: ready long ago, failed, pending, and another model's.
    """
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    serving = indexing.register_model()
    model = indexing.register_model("next")
    now = timezone.now()
    add_rows(model, 30, at=now - timedelta(minutes=20))
    for batch in range(10):
        add_rows(model, 8, at=now - timedelta(seconds=90 - 10 * batch))
    add_rows(model, 3, state="failed", at=now - timedelta(seconds=30))
    add_rows(model, 40, state="pending")
    add_rows(serving, 16, at=now - timedelta(seconds=5))
    return model, now


def test_the_rate_and_time_left_of_a_known_run(known_run):
    model, now = known_run
    assert rates.embedding_rate(model, now=now) == pytest.approx(0.8)  # 72 images after the first batch, in 90 s
    counts = indexing.model_progress(model)
    assert (counts["pending"], counts["missing"]) == (40, 16)  # the serving model's 16 images are not queued yet
    assert rates.seconds_left(counts, 0.8) == pytest.approx(70.0)
    # The rate falls while nothing more is embedded: 2 minutes later, 72 images in 210 s.
    assert rates.embedding_rate(model, now=now + timedelta(minutes=2)) == pytest.approx(72 / 210)
    assert rates.embedding_rate(model, now=now + timedelta(minutes=6)) == 0.0  # nothing in the last 5 minutes
    assert rates.seconds_left(counts, 0.0) is None


def run_rate_since(now, shown):
    """Whether ``shown`` is the known run's rate read at some moment between ``now`` and this one.

    72 images after the first batch: 0.8 a second at ``now``, less as the test goes on (a second
    or two on a busy CI machine); a shown rate is rounded to 2 decimals at most.
    """
    slowest = 72 / (90 + (timezone.now() - now).total_seconds())
    return slowest - 0.005 <= shown <= 0.8 + 0.005


def test_the_page_the_status_and_the_wait_bar_show_the_known_rate_and_time_left(known_run, admin_client, capsys):
    model, now = known_run
    response = admin_client.get(PAGE)
    row = next(r for r in response.context["models"] if r["model"] == model)
    assert run_rate_since(now, row["rate"])  # the page reads a moment after `now`
    assert 70.0 <= row["seconds_left"] == pytest.approx(56 / row["rate"])
    cells = re.search(rf'<tr data-model="{model.pk}">(.*?)</tr>', response.content.decode(), re.S).group(1)
    shown_rate = float(re.search(r'class="rate">([\d.]+) img/s<', cells).group(1))
    shown_left = int(re.search(r'class="left">about (\d+) s<', cells).group(1))
    assert run_rate_since(now, shown_rate) and shown_left == pytest.approx(56 / shown_rate, abs=1)

    line = next(line for line in run_command("status").splitlines() if line.startswith(f"[{model.pk}]"))
    shown = re.search(r"110 ready, 40 pending, 3 failed, 16 missing; (0\.\d+) img/s, about (\d+) s left$", line)
    assert shown and run_rate_since(now, float(shown[1])) and 69 <= int(shown[2]) <= 56 / float(shown[1]) + 1, line

    capsys.readouterr()
    with pytest.raises(CommandError, match=r"no image was embedded for 1 s and 56 are left") as error:
        call_command("p2w_index", "wait", "--model", str(model.pk), "--stall", "1")
    bar = capsys.readouterr().err
    assert run_rate_since(now, float(re.search(r"([\d.]+) img/s, about \d+ s left", bar).group(1)))
    assert "(p2w_search.H001) queue" in str(error.value)  # and why: no worker on the bulk queue


def test_the_wait_bar_ends_on_the_rate_the_run_ended_at(db, settings, capsys, monkeypatch):
    """A run that completes between two reads of the rate ends with a fresh rate and "complete"."""
    from p2w_search.management.commands import p2w_index

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    model = indexing.register_model()
    now = timezone.now()
    for batch in range(4):  # 4 batches of 8, 2 s apart: 24 images after the first batch, in about 6 s
        add_rows(model, 8, at=now - timedelta(seconds=6 - 2 * batch))
    last = add_rows(model, 8, state="pending")

    def a_worker_ends_the_last_batch(seconds):  # while the bar waits its first half second
        ImageEmbedding.objects.filter(pk__in=[row.pk for row in last]).update(
            state="ready", vector=[1.0] + [0.0] * (model.dimensions - 1), norm=1.0, updated_at=timezone.now())

    monkeypatch.setattr(p2w_index.time, "sleep", a_worker_ends_the_last_batch)
    call_command("p2w_index", "wait", "--model", str(model.pk))
    last_line = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert float(re.search(r"([\d.]+) img/s, complete", last_line).group(1)) == pytest.approx(32 / 6, rel=0.1)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_rate_and_time_left_match_a_real_workers_run_by_the_clock(start_worker, settings, empty_queues):
    """A real worker that spends 0.4 s on each batch of 4 images; the test's clock is the truth."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "TASK_BATCH_SIZE": 4, "SEARCH_HEALTH_CACHE": None}
    model = indexing.register_model()
    start_worker(queues=[settings.P2W_SEARCH["BULK_QUEUE"]], env={
        "P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder", "P2W_TEST_EMBED_DELAY": "0.4"})
    add_images(32)  # 8 batches

    changes, predicted = [], None  # (clock, images ready) at each change; (clock, seconds left) once
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = ImageEmbedding.objects.filter(model=model, state="ready").count()
        now = time.monotonic()
        if ready and (not changes or ready != changes[-1][1]):
            changes.append((now, ready))
            if predicted is None and ready >= 12:
                predicted = (now, rates.seconds_left(indexing.model_progress(model), rates.embedding_rate(model)))
        if ready == 32:
            break
        time.sleep(0.02)
    rate = rates.embedding_rate(model)
    assert changes[-1][1] == 32, changes

    (first, first_ready), (last, _) = changes[0], changes[-1]
    clock_rate = (32 - first_ready) / (last - first)  # images after the first batch, over the time since it
    assert rate == pytest.approx(clock_rate, rel=0.05)  # within 1 % in three runs here
    assert predicted[1] == pytest.approx(last - predicted[0], rel=0.2), (predicted, changes)  # within 2-7 %


def test_embedded_images_per_minute_for_the_chart(db, settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    model = indexing.register_model()
    now = timezone.now().replace(second=30, microsecond=0)
    add_rows(model, 5, at=now)
    add_rows(model, 3, at=now - timedelta(minutes=1))
    add_rows(model, 7, at=now - timedelta(minutes=59))
    add_rows(model, 9, at=now - timedelta(minutes=60))  # out of the hour
    add_rows(model, 4, state="failed", at=now)

    series = rates.per_minute(now=now)[model.pk]
    assert len(series) == 60
    assert (series[-1], series[-2], series[0], sum(series)) == (5, 3, 7, 15)


def test_a_chart_draws_each_series_on_a_scale_from_zero_to_its_largest_value():
    svg = svg_charts.line_chart([("1: tiny", [None, 2.0, 4.0, None, 1.0])], title="Images", unit="img/s",
                                width=152, height=72)
    # 100 px wide and 20 px high inside the margins (44 left, 8 right, 32 above, 20 below): a point each 25 px.
    assert '<polyline fill="none" stroke="#417690" stroke-width="1.5" points="69.0,42.0 94.0,32.0"/>' in svg
    assert '<circle cx="144.0" cy="47.0" r="2" fill="#417690"/>' in svg  # a lone point after a gap
    assert "<title>Images: largest 4 img/s</title>" in svg and "\u25cf 1: tiny" in svg
    assert "<script" not in svg


# --- workers, and doctor's findings ---

def add_images(count):
    """Images committed as an upload commits them: the commit sends their batch to the bulk queue."""
    with transaction.atomic():
        return [ProductImageFactory(product=ProductFactory(), data=png((30 * n, 60, 90))) for n in range(count)]


def doctor_cli(database_url):
    """``manage.py p2w_index doctor`` in a process of its own, on the test database: (exit status, output)."""
    import os

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url}
    done = subprocess.run([sys.executable, "manage.py", "p2w_index", "doctor"], cwd=REPO_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def empty_queues(settings):
    """This session's bulk and query queues emptied: tasks other tests sent and no worker took are no work here."""
    from celery import current_app

    with current_app.connection_for_write() as conn:
        for queue in (settings.P2W_SEARCH["BULK_QUEUE"], settings.P2W_SEARCH["QUERY_QUEUE"]):
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - a queue nobody declared yet is empty
                pass


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_page_warns_while_the_bulk_queue_has_work_and_no_worker(admin_client, start_worker, settings,
                                                                   test_database_url, empty_queues):
    # No `media` fixture: the worker process reads the images from the settings' MEDIA_ROOT.
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    bulk = settings.P2W_SEARCH["BULK_QUEUE"]
    model = indexing.register_model()
    add_images(3)

    response = admin_client.get(PAGE)
    page = response.content.decode()
    assert f"queue {bulk} has 3 images to embed (1 task waiting) and no worker: they stay pending until one runs." \
        in page
    assert re.search(rf'<tr data-queue="{bulk}"><td>{bulk}</td><td colspan="7" class="p2w-none">no worker alive', page)
    assert response.context["findings"][0].id == "p2w_search.H001"
    out = run_command("status")
    assert f"  {bulk}: no worker alive" in out and "ERROR (p2w_search.H001) queue" in out
    code, out = doctor_cli(test_database_url)
    assert code == 1, out
    assert "ERRORS:\n(p2w_search.H001) queue" in out and "p2w_index doctor: 1 error, 0 other." in out

    # A worker that takes the batch and works on it for a minute: the images are still pending, and nobody warns.
    # (prefork: its main process answers the fixture's ping while its pool process works.)
    worker = start_worker(queues=[bulk], pool="prefork", env={
        "P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder", "P2W_TEST_EMBED_DELAY": "60"})
    wait_for(lambda: ImageEmbedding.objects.filter(attempts=1).count() == 3, message="the worker took the batch")
    wait_for(lambda: workers.alive(bulk).exists(), message="the worker's heartbeat")
    response = admin_client.get(PAGE)
    page = response.content.decode()
    assert indexing.model_progress(model)["pending"] == 3
    assert [f.id for f in response.context["findings"]] == []
    assert "No problem found" in page
    host = re.search(rf'<tr data-queue="{bulk}">(.*?)</tr>', page, re.S).group(1)
    assert worker.hostname in host
    assert re.search(rf"<td>1</td><td>cpu</td>\s*<td>{re.escape(model.key)}</td>", host)  # 1 process, on cpu
    code, out = doctor_cli(test_database_url)
    assert (code, out.strip()) == (0, "p2w_index doctor: no problem found.")

    # It stops reporting (killed, out of memory): the page says so, and warns again.
    WorkerProcess.objects.update(seen_at=timezone.now() - timedelta(seconds=45))
    ids = [f.id for f in admin_client.get(PAGE).context["findings"]]
    assert ids == ["p2w_search.H001", "p2w_search.H006"]
    worker.kill()  # not stopped: it would finish its minute-long batch first


def test_no_query_worker_is_an_error_only_while_queries_are_encoded_on_workers(db, settings, empty_queues):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None, "QUERY_ENCODING": "worker"}
    indexing.register_model()
    query = settings.P2W_SEARCH["QUERY_QUEUE"]
    found = doctor.findings(status.index_status())
    assert [f.id for f in found] == ["p2w_search.H002"]
    assert found[0].msg == (f"no worker is alive on queue {query}: text, photo and composed searches answer 503 "
                            "after 20 s.")
    now = timezone.now()
    WorkerProcess.objects.create(hostname="query@test", pid=1, queues=[query], started_at=now, ready_at=now,
                                 seen_at=now, device="cpu")
    assert doctor.findings(status.index_status()) == []
    WorkerProcess.objects.all().delete()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "local"}
    assert doctor.findings(status.index_status()) == []


def test_no_serving_model_and_failed_images_are_warnings(db, settings, media, empty_queues):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    assert [f.id for f in doctor.findings(status.index_status())] == ["p2w_search.H004"]
    model = indexing.register_model()
    add_rows(model, 2, state="failed")
    found = doctor.findings(status.index_status())
    assert [f.id for f in found] == ["p2w_search.H010"]
    assert found[0].msg.startswith(f"2 images failed to embed under the serving model {model.key}")
    assert run_command("doctor").endswith("p2w_index doctor: 0 errors, 1 other.\n")  # warnings alone: exit 0


def test_a_stalled_model_is_a_warning_while_workers_are_alive(db, settings, empty_queues):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    model = indexing.register_model()
    now = timezone.now()
    WorkerProcess.objects.create(hostname="bulk@test", pid=1, queues=[settings.P2W_SEARCH["BULK_QUEUE"]],
                                 started_at=now, ready_at=now, seen_at=now, device="cpu")
    pending = ImageEmbedding.objects.filter(pk__in=[row.pk for row in add_rows(model, 5, state="pending")])
    add_rows(model, 4, at=now - timedelta(minutes=7))  # the last batch ended before the rate's 5 minutes
    pending.update(queued_at=now - timedelta(minutes=2))
    assert doctor.findings(status.index_status()) == []  # queued 2 minutes ago: maybe a first, slow batch

    pending.update(queued_at=now - timedelta(minutes=12))
    found = doctor.findings(status.index_status())
    assert [f.id for f in found] == ["p2w_search.H005"]
    assert found[0].msg == (f"model {model} has 5 images pending, the oldest queued 12 min ago, and none was embedded "
                            "in the last 5 minutes although 1 worker process is alive on "
                            f"{settings.P2W_SEARCH['BULK_QUEUE']}.")
    add_rows(model, 4, at=now - timedelta(seconds=20))
    add_rows(model, 4, at=now - timedelta(seconds=10))  # two batches: a rate, so not stalled
    assert doctor.findings(status.index_status()) == []


def test_a_broker_out_of_reach_is_an_error(db, settings, tmp_path):
    from tests.faults import celery_broker

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    indexing.register_model()
    started = time.monotonic()
    with celery_broker(f"redis+socket://{tmp_path / 'nobody-listens.sock'}"):
        current = status.index_status()
    assert time.monotonic() - started < 15
    assert set(current["queues"].values()) == {None}
    assert [f.id for f in doctor.findings(current)] == ["p2w_search.H003"]


def test_the_page_links_to_flower_only_when_configured(admin_client, settings, db):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
    assert 'id="flower-link"' not in admin_client.get(PAGE).content.decode()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "FLOWER_URL": "https://flower.example.com/"}
    page = admin_client.get(PAGE).content.decode()
    assert '<a href="https://flower.example.com/" id="flower-link"' in page


def test_the_page_draws_the_last_hour(admin_client, known_run):
    page = admin_client.get(PAGE).content.decode()
    charts = re.search(r'<div class="p2w-charts" id="charts">(.*?)</div>', page, re.S).group(1)
    assert charts.count("<svg") == 2
    largest = max(n for series in rates.per_minute().values() for n in series) / 60
    assert f"<title>Images embedded per second: largest {largest:.3g} img/s</title>" in charts
    assert "<title>Search latency p95 (answered searches): no data</title>" in charts
    assert f"\u25cf {known_run[0].pk}: p2w-test-tiny48" in charts
    assert EmbeddingModel.objects.count() == 2


def test_the_shop_pages_searches_are_counted_beside_the_apis(shop, health_cache, settings, client):
    # The storefront's "like this, but ..." and text searches run the app's shopper journey (its template tags).
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "2/min"}
    pages = [client.get(f"/product/{shop[0].pk}/", {"change": "in blue"}).status_code for _ in range(3)]
    assert pages == [200, 200, 429]
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": None}
    assert client.get("/", {"q": "a red mug", "change": "in blue"}).status_code == 200
    assert client.get(f"/product/{shop[0].pk}/", {"change": "5 * stars"}).status_code == 400

    found = search_health.summary()["windows"][5]
    product, text = found["page-product"], found["page-text"]
    assert (product["requests"], product["ok"], product["throttled"], product["rejected"]) == (4, 2, 1, 1)
    assert (text["requests"], text["ok"]) == (1, 1)
    assert {"encode", "sql", "total"} <= set(product["phases"]) and product["p50"] is not None
    assert found["all"]["requests"] == 5

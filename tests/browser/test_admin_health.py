"""The admin's index page in a real browser while shoppers search and a worker embeds the catalog with a new model."""

import re
import threading
import time
import uuid

import pytest
import requests
from django.db import transaction

from p2w_search import indexing, workers
from p2w_search.models import ImageEmbedding
from tests.conftest import wait_for
from tests.factories import ProductFactory, ProductImageFactory, png

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PAGE = "/admin/p2w_search/embeddingmodel/index/"


@pytest.fixture
def shop_under_load(transactional_db, settings, start_worker, django_user_model):
    """24 products served by the default model; a real bulk worker embeds them with model "next" (1 s a batch of 4).

    20 anonymous searches a minute: the two shoppers pass it in 8 s even on a loaded machine (60 were not reached).
    """
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "20/min", "TASK_BATCH_SIZE": 4,
                           "SEARCH_HEALTH_CACHE": "p2w-health"}
    settings.CACHES = {**settings.CACHES, "p2w-health": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}}
    serving = indexing.register_model()
    with transaction.atomic():
        images = [ProductImageFactory(product=ProductFactory(title=f"Product {n}"), data=png((10 * n, 200 - 5 * n, 90)))
                  for n in range(24)]
    indexing.embed_pending(serving.pk, list(ImageEmbedding.objects.filter(model=serving).values_list("pk", flat=True)))
    worker = start_worker(queues=[settings.P2W_SEARCH["BULK_QUEUE"]], pool="prefork", env={
        "P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder", "P2W_TEST_EMBED_DELAY": "1.0"})
    wait_for(lambda: workers.alive(settings.P2W_SEARCH["BULK_QUEUE"]).exists(), message="the worker's heartbeat")
    building = indexing.register_model("next")
    indexing.queue_missing(building)
    django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    return images, building, worker


def shoppers(base_url, seconds, products):
    """Two clients searching for ``seconds``: text, more like this, and a bad parameter now and then."""
    answers = []

    def client(offset):
        session = requests.Session()
        stop = time.monotonic() + seconds
        n = offset
        while time.monotonic() < stop:
            n += 1
            if n % 7 == 0:
                response = session.get(f"{base_url}/api/search/similar/", params={"product": "twelve"})
            elif n % 2:
                response = session.get(f"{base_url}/api/search/text/", params={"q": "a red t-shirt"})
            else:
                response = session.get(f"{base_url}/api/search/similar/", params={"product": products[n % 24]})
            answers.append(response.status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    return threads, answers


def test_the_index_page_under_load(live_server, shop_under_load, page, screenshot, settings):
    images, building, worker = shop_under_load
    threads, answers = shoppers(live_server.url, 8, [image.product_id for image in images])
    wait_for(lambda: ImageEmbedding.objects.filter(model=building, state="ready").count() >= 8,
             message="two batches of the new model embedded")

    page.goto(f"{live_server.url}/admin/login/?next={PAGE}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{PAGE}")
    for thread in threads:
        thread.join()
    page.reload()  # the searches of the whole run

    assert 429 in answers and 400 in answers and 200 in answers
    bulk = settings.P2W_SEARCH["BULK_QUEUE"]
    assert worker.hostname in page.inner_text(f'#workers tr[data-queue="{bulk}"]')
    row = page.locator(f'#models tr[data-model="{building.pk}"]')
    assert re.fullmatch(r"[\d.]+ img/s", row.locator(".rate").inner_text())
    assert re.fullmatch(r"about \d+ (s|min)|complete", row.locator(".left").inner_text())
    searches = page.locator('#searches tr[data-window="5"][data-endpoint="all"]')
    assert int(searches.locator(".requests").inner_text()) == len(answers)
    assert int(searches.locator(".throttled").inner_text()) == answers.count(429)
    assert int(searches.locator(".rejected").inner_text()) == answers.count(400)
    assert page.locator("#charts svg").count() == 2
    assert page.locator("#charts svg").first.locator("polyline, circle").count() >= 1
    assert page.locator('#findings li[data-id="p2w_search.H009"]').count() == 1  # the throttled searches
    screenshot(page, "admin-index-health")

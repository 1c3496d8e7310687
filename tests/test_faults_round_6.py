"""Staying up on the shopper's side, round 6: faults in the middle of a shopper's search or photo.

A part that is down is said in words (a 503 with Retry-After where it passes), never a 500 and
never a wait past ``QUERY_TIMEOUT``; nothing is lost (a kept photo its storage cannot read now is
still kept), and the same web process answers again once the part is back.
"""

import io
import re
import threading
import time

import pytest
from django.test import Client
from django.utils.html import escape

from p2w_search import encoding, indexing
from p2w_search.models import EmbeddingModel, ImageEmbedding
from tests.conftest import wait_for
from tests.factories import png, solid_colour_shop
from tests.fault_storage import storage_settings
from tests.test_faults import private_redis  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

UNREADABLE = "The shop cannot read your photo right now; it is still kept. Try this link again in a few minutes."
MODEL_GONE = "The search model was changed while this search ran. Search again."
WORKER_FAILED = ("The search worker could not encode this query (the error is logged for the shop's staff). "
                 "Try again.")
# A query worker whose composed forward pass takes 3 s: long enough to break something while it encodes.
SLOW_COMPOSE = {"P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder", "P2W_TEST_COMPOSE_DELAY": "3"}


def page_text(response):
    return re.sub(r"\s+", " ", response.content.decode())


def notices(response):
    """The sentences a page says about a search that cannot run or a photo (the notice and the headline)."""
    return re.findall(r"(?:Search is|Your photo is|The shop|The search model)[^<]*", page_text(response))


def upload_photo(client, path="/"):
    photo = io.BytesIO(png((200, 30, 30)))
    photo.name = "photo.png"
    response = client.post(path, {"photo": photo})
    assert response.status_code == 303, response.content[:500]
    return response["Location"]


def photo_storage_failing(settings, operation, error):
    """The shoppers' photos' storage (the uploads storage, in its folder) failing ``operation`` with ``error``."""
    location = settings.STORAGES["p2w_uploads"]["OPTIONS"]["location"]
    saved = settings.STORAGES
    settings.STORAGES = {**saved, "p2w_uploads": storage_settings(location, fail=[operation], error=error,
                                                                  match="p2w-photos")}
    return lambda: setattr(settings, "STORAGES", saved)


@pytest.mark.parametrize("error", ["EIO", "EACCES"])
def test_a_kept_photo_its_storage_cannot_read_is_a_503_and_its_link_works_again(client, media, settings, error):
    """The storage failed to read a photo it still held: the page said "Your photo is no longer kept: the shop keeps
    a limited number of photos" (410), false, and the shopper uploaded again. It is a 503 that passes: the same link
    shows the photo's results once the storage reads again."""
    solid_colour_shop()
    link = upload_photo(client)
    restore = photo_storage_failing(settings, "open", error)
    response = client.get(link)
    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert notices(response) == ["Search is unavailable right now.", UNREADABLE]
    restore()
    again = client.get(link)
    assert again.status_code == 200 and notices(again) == []


def test_a_kept_photo_whose_file_is_gone_is_still_a_410(client, media, settings):
    """The control: a photo the storage no longer has (its folder cleared) is gone, as before."""
    solid_colour_shop()
    link = upload_photo(client)
    photo_storage_failing(settings, "open", "ENOENT")
    response = client.get(link)
    assert response.status_code == 410
    assert notices(response) == ["Your photo is no longer kept: the shop keeps a limited number of photos of all "
                                 "shoppers at once. Upload it again to search with it."]


@pytest.mark.urls("tests.like_this_urls")
def test_photo_search_view_says_when_to_come_back(client, media, settings):
    """A host shop's PhotoSearchView answered its 503s (a photo it cannot keep or read now, no worker) without
    Retry-After, where the demo's pages and the API give it."""
    solid_colour_shop()
    link = upload_photo(client, "/shop/photo/")
    photo_storage_failing(settings, "open", "EIO")
    read = client.get(link)
    assert (read.status_code, read["Retry-After"], notices(read)) == (503, "30", ["Search is unavailable right now.",
                                                                                  UNREADABLE])
    photo_storage_failing(settings, "save", "EROFS")
    photo = io.BytesIO(png())
    photo.name = "photo.png"
    kept = client.post("/shop/photo/", {"photo": photo})
    assert (kept.status_code, kept["Retry-After"]) == (503, "30")
    assert "The shop cannot keep your photo right now; try again in a few minutes." in page_text(kept)


def test_a_model_deleted_before_a_local_encoding_is_a_503_in_words(settings):
    """Encoding in the web process (``QUERY_ENCODING = "local"``): the model's DoesNotExist was a 500."""
    model = indexing.register_model()
    gone = EmbeddingModel(pk=model.pk + 1000)
    with pytest.raises(encoding.ModelGone) as refused:
        encoding.encode_query(gone, encoding.TEXT, "red")
    assert isinstance(refused.value, encoding.QueryEncoderUnavailable)
    assert str(refused.value) == "The search model was changed while this search ran. Search again."


def in_background(client, path):
    """GET ``path`` in a thread, as a shopper's request in flight; ``.join()`` returns (response, seconds)."""
    out = []

    def run():
        started = time.monotonic()
        out.append((client.get(path), time.monotonic() - started))

    thread = threading.Thread(target=run)
    thread.start()

    class Request:
        @staticmethod
        def join():
            thread.join(timeout=60)
            return out[0]

    return Request


@pytest.mark.worker
def test_a_search_whose_model_is_switched_and_deleted_in_flight_is_a_503_and_the_next_uses_the_new_one(
        private_redis, start_worker, settings):  # noqa: F811
    """A staff member switches to the new model and deletes the old one ("switch first, then delete") while a
    shopper's search waits in the query queue under the old one. The worker's EmbeddingModel.DoesNotExist
    came back to the web process as itself: a 500. It is a 503 that says so; the next search uses the new model."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 20.0}
    solid_colour_shop()
    old = EmbeddingModel.objects.get(state="serving")
    new = indexing.register_model("next")
    indexing.queue_missing(new)
    indexing.embed_pending(new.pk, list(ImageEmbedding.objects.filter(model=new).values_list("pk", flat=True)))
    client = Client(raise_request_exception=False)
    path = "/?q=red+shirt"  # a composed search would need a mapping that the test's "next" model has not
    request = in_background(client, path)  # no worker yet: the query waits in the queue
    wait_for(lambda: private_redis.client().llen(settings.P2W_SEARCH["QUERY_QUEUE"]) == 1, timeout=10,
             message="the query sent")
    indexing.switch_serving(new)
    EmbeddingModel.objects.filter(pk=old.pk).delete()
    start_worker(queues=[settings.P2W_SEARCH["QUERY_QUEUE"]], env={"REDIS_URL": private_redis.url})

    response, _ = request.join()
    # no Retry-After: the next search runs at once, under the model that serves now (as the API says it)
    assert (response.status_code, response.get("Retry-After")) == (503, None), response.content[:300]
    assert notices(response) == ["Search is unavailable right now.", MODEL_GONE]
    again = client.get(path)
    assert again.status_code == 200 and notices(again) == []
    assert f"Model: <code>{escape(new)}</code>" in again.content.decode()  # the footer: the model that ranked it


@pytest.mark.worker
def test_a_query_the_worker_fails_on_is_a_503_in_words_not_the_workers_exception(start_worker, settings):
    """Whatever the worker raised came back as that exception in the web process (a ValueError, a made-up class):
    a 500. It is QueryEncoderUnavailable (a 503) with a sentence; the cause goes to the log."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 20.0}
    shop = solid_colour_shop()
    start_worker(queues=[settings.P2W_SEARCH["QUERY_QUEUE"]])
    model = EmbeddingModel.objects.get(state="serving")
    payload = {"text": "in red", "method": "no-such-method", "template": None,
               "image_id": shop[0].p2w_images.get().pk}
    with pytest.raises(encoding.QueryEncoderUnavailable) as failed:
        encoding.encode_query(model, encoding.COMPOSED, payload)
    assert str(failed.value) == WORKER_FAILED
    assert len(encoding.encode_query(model, encoding.TEXT, "red")) == 32  # the worker goes on


@pytest.mark.worker
def test_redis_dying_during_a_composed_search_is_a_503_in_time_and_the_next_search_works(
        private_redis, start_worker, settings):  # noqa: F811
    """Redis (the query queue's broker and result store) dies while the worker encodes a shopper's composed search:
    the page answers 503 in words well within QUERY_TIMEOUT, without Celery's "The Celery application must be
    restarted." (not so, and a shopper read it), and once Redis is back the same web process searches again."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 8.0}
    shop = solid_colour_shop()
    start_worker(queues=[settings.P2W_SEARCH["QUERY_QUEUE"]], env={**SLOW_COMPOSE, "REDIS_URL": private_redis.url})
    client = Client(raise_request_exception=False)
    path = f"/product/{shop[0].pk}/?change=in+red"
    assert client.get(path).status_code == 200

    request = in_background(client, path)
    time.sleep(1)  # inside the worker's 3 s forward pass
    private_redis.crash()
    response, seconds = request.join()
    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert seconds < 4, seconds
    said = notices(response)
    assert said[0] == "Search is unavailable right now."
    assert said[1].startswith("Search is busy right now. The task queue cannot be reached (")
    assert "must be restarted" not in page_text(response)

    private_redis.start()
    wait_for(lambda: client.get(path).status_code == 200, timeout=60, interval=1, message="searches answered again")

"""Two tabs of one browser at once: a shopper's kept photos do not depend on which request saved the session last.

Each tab is a test Client of its own on a thread of its own (so on a database connection of its
own), holding the same session cookie; the sessions are the test settings' (the database).
The overlap is made, not hoped for: the first tab stops inside ``photos.keep`` once it has read
the session (at its call of ``remove_expired``, the last step of a keep), or inside a page of
the shop's own that writes the session; the other tab runs meanwhile; then the first goes on.
A session's list of tokens lost the other tab's photo there (a 404 for the photo just
uploaded, and its file left out of the session's count of 5).
"""

import re
import threading
import time

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connections
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from p2w_search import photos, search
from p2w_search.uploads.storage import upload_backend
from tests import like_this_urls
from tests.factories import embed_catalog, png
from tests.test_like_this import grid_ids, ids, kept_files, upload
from tests.test_storefront import make_catalog

pytestmark = [pytest.mark.urls("tests.test_like_this_tabs"), pytest.mark.django_db(transaction=True)]

PHOTOS = [png((40 * i, 200 - 30 * i, 60)) for i in range(8)]
NOT_HERE = ("This photo is not available here: photos are kept only for the browser that uploaded them. "
            "Upload it again to search with it.")
LET_GO = (f"Your photo is no longer kept: this browser keeps its {photos.KEPT_PER_SESSION} latest photos. "
          "Upload it again to search with it.")


class Stop:
    """A point where the first request to reach it once ``armed`` waits until ``go()``; the others pass."""

    def __init__(self, armed=True):
        self.reached, self.released, self.lock, self.passed = threading.Event(), threading.Event(), threading.Lock(), 0
        self.armed = armed

    def __call__(self):
        if not self.armed:
            return
        with self.lock:
            self.passed += 1
            first = self.passed == 1
        if first:
            self.reached.set()
            assert self.released.wait(10), "the test never let the request go on"

    def wait(self):
        assert self.reached.wait(10), "no request reached the stop"

    def go(self):
        self.released.set()


SEEN_STOP = [None]  # the Stop of the page below, for the test that uses it


def recently_viewed(request):
    """A page of the shop's own that writes the session (a list of products seen), from what it read of it."""
    seen = list(request.session.get("seen", []))
    if SEEN_STOP[0] is not None:
        SEEN_STOP[0]()
    request.session["seen"] = [*seen, request.GET["product"]]
    return HttpResponse("seen")


urlpatterns = [*like_this_urls.urlpatterns, path("shop/seen/", recently_viewed)]


class Tab(threading.Thread):
    """One request of the browser ``client`` (its session cookie) on a thread of its own; ``result()`` waits for it."""

    def __init__(self, client, method, *args, **kwargs):
        super().__init__(daemon=True)
        self.tab = Client()
        self.tab.cookies[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.call, self.response, self.error = lambda: getattr(self.tab, method)(*args, **kwargs), None, None
        self.start()

    def run(self):
        try:
            self.response = self.call()
        except BaseException as exc:  # raised again by result(), in the test
            self.error = exc
        finally:
            connections.close_all()

    def result(self):
        self.join(20)
        assert not self.is_alive(), "the tab's request did not end"
        if self.error is not None:
            raise self.error
        return self.response


@pytest.fixture
def shop(transactional_db, media):
    products = make_catalog()
    embed_catalog()
    return products


@pytest.fixture
def stop_in_keep(monkeypatch):
    """A Stop inside ``photos.keep``, after it read (and changed) the session and before the session is saved;
    armed by ``upload_in_two_tabs_at_once``."""
    stop, sweep = Stop(armed=False), photos.remove_expired

    def remove_expired(**kwargs):
        stop()
        return sweep(**kwargs)

    monkeypatch.setattr(photos, "remove_expired", remove_expired)
    yield stop
    stop.go()


@pytest.fixture
def stop_in_page():
    SEEN_STOP[0] = stop = Stop()
    yield stop
    stop.go()
    SEEN_STOP[0] = None


def link_of(response):
    assert response.status_code == 303
    return response["Location"]


def token_of(link):
    return re.search(r"photo=([\w-]+)", link).group(1)


def assert_shows(client, link, data):
    """The page of ``link`` is 200 with the results of the photo ``data``."""
    page = client.get(link)
    assert page.status_code == 200
    assert grid_ids(page, "results") == ids(search.image(data, k=24))


def upload_in_two_tabs_at_once(client, stop, first, second):
    """Tab 1 uploads ``first`` and stops inside keep; tab 2 uploads ``second`` to the end; tab 1 goes on."""
    stop.armed = True
    tab1 = Tab(client, "post", "/shop/photo/", {"photo": upload(first)})
    stop.wait()
    link2 = link_of(Tab(client, "post", "/shop/photo/", {"photo": upload(second)}).result())
    stop.go()
    return link_of(tab1.result()), link2


def test_two_tabs_uploading_at_once_each_keep_their_photo_for_this_browser_only(client, shop, media, stop_in_keep):
    earlier = link_of(client.post("/shop/photo/", {"photo": upload(PHOTOS[0])}))
    link1, link2 = upload_in_two_tabs_at_once(client, stop_in_keep, PHOTOS[1], PHOTOS[2])

    for link, data in ((earlier, PHOTOS[0]), (link1, PHOTOS[1]), (link2, PHOTOS[2])):
        assert_shows(client, link, data)
    assert len(kept_files(media)) == 2 * 3  # each with its preview
    other = Client()
    link_of(other.post("/shop/photo/", {"photo": upload(PHOTOS[3])}))  # a browser with photos of its own
    for link in (earlier, link1, link2):
        response = other.get(link)
        assert response.status_code == 404 and NOT_HERE in response.content.decode()
    token = token_of(link2)  # a token altered in one character is no token of this browser either
    altered = link2.replace(token, token[:10] + ("A" if token[10] != "A" else "B") + token[11:])
    response = client.get(altered)
    assert response.status_code == 404 and NOT_HERE in response.content.decode()


def test_a_first_photo_survives_another_tabs_page_saving_the_session(client, shop, stop_in_page):
    """The session's first photo: the page of the other tab read the session before it and saved it after."""
    assert client.session.session_key  # the browser has a session (a cookie) and no photo yet
    page = Tab(client, "get", "/shop/seen/", {"product": "7"})
    stop_in_page.wait()
    link = link_of(Tab(client, "post", "/shop/photo/", {"photo": upload(PHOTOS[4])}).result())
    stop_in_page.go()
    assert page.result().status_code == 200

    assert client.session["seen"] == ["7"]  # the page's save was the last
    assert_shows(client, link, PHOTOS[4])
    response = Client().get(link)
    assert response.status_code == 404 and NOT_HERE in response.content.decode()


def test_the_latest_five_are_counted_over_every_tab_of_the_browser(client, shop, media, stop_in_keep):
    links = [link_of(client.post("/shop/photo/", {"photo": upload(data)})) for data in PHOTOS[:4]]
    links += upload_in_two_tabs_at_once(client, stop_in_keep, PHOTOS[4], PHOTOS[5])

    assert len(kept_files(media)) == 2 * photos.KEPT_PER_SESSION  # each with its preview: none left uncounted
    gone = client.get(links[0])  # the oldest was let go, and its own browser is told so
    assert gone.status_code == 404 and LET_GO in gone.content.decode()
    for link, data in zip(links[1:], PHOTOS[1:6]):
        assert_shows(client, link, data)


def test_a_session_with_photos_of_the_old_layout_still_has_them_beside_new_ones(client, shop, media, settings,
                                                                                 stop_in_keep):
    """A session of before the owner id: its tokens in the session. They load until they expire, never a 500."""
    storage, now = upload_backend(), time.time()
    storage.save(f"{photos.FOLDER}/{int(now)}-oldlayoutphoto", ContentFile(PHOTOS[6]))
    storage.save(f"{photos.FOLDER}/{int(now)}-oldlayoutphoto.jpg", ContentFile(PHOTOS[6]))
    session = client.session
    session[photos.SESSION_KEY] = {"oldlayoutphoto": now, "oldlayoutswept": now}
    session[photos.LET_GO_KEY] = ["oldlayoutletgo"]
    session.save()
    link1, link2 = upload_in_two_tabs_at_once(client, stop_in_keep, PHOTOS[1], PHOTOS[2])

    assert_shows(client, "/shop/photo/?photo=oldlayoutphoto", PHOTOS[6])
    assert_shows(client, link1, PHOTOS[1])
    assert_shows(client, link2, PHOTOS[2])
    let_go, swept = client.get("/shop/photo/?photo=oldlayoutletgo"), client.get("/shop/photo/?photo=oldlayoutswept")
    assert let_go.status_code == 404 and LET_GO in let_go.content.decode()
    assert swept.status_code == 410 and "the shop keeps a limited number of photos" in swept.content.decode()

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PHOTO_KEEP_SECONDS": 0}
    for link in ("/shop/photo/?photo=oldlayoutphoto", link1, link2):
        gone = client.get(link)
        assert gone.status_code == 410
        assert "Your photo is no longer kept: photos are kept for 0 seconds after the upload." in gone.content.decode()
    assert kept_files(media) == []

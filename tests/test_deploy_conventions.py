"""The app under the deployment conventions of a real shop, beyond the demo's settings and URLs.

Other prefixes than the demo's (tests/conventions_urls.py: the photo search under ``/shop/search/``,
the merchant pages under ``/sellers/``, the API under ``/api/v2/``) and the whole site under a
sub-path (``FORCE_SCRIPT_NAME``, or ``SCRIPT_NAME`` from the WSGI environ); ``ATOMIC_REQUESTS``;
the CSRF token kept in the session and an HttpOnly CSRF cookie; a Content-Security-Policy without
inline scripts or styles; the pages inside ``i18n_patterns`` with a language that groups
thousands; sessions in signed cookies or in the cache.
"""

import io
import re
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client
from django.urls import clear_script_prefix, set_script_prefix
from rest_framework.test import APIClient

from p2w_search import dispatch
from p2w_search.conf import app_settings
from p2w_search.models import ImportJob
from p2w_search.shopper.pieces import MAX_SIDE
from tests import test_storefront
from tests.factories import MerchantFactory, png
from tests.test_merchant_pages import HEADER, files, row

PHOTO = png((30, 50, 210))
URLS = "tests.conventions_urls"
shop = test_storefront.shop  # a fixture: the storefront's catalog, embedded


def photo():
    file = io.BytesIO(PHOTO)
    file.name = "photo.png"
    return file


def links(response):
    """Every href, action, src and data-*-url of a page, as written."""
    return re.findall(r'\s(?:href|action|src|data-[a-z-]+-url)="([^"]*)"', response.content.decode())


@contextmanager
def script_prefix(prefix):
    """What Django's WSGI handler does for each request under a sub-path (the test client does not)."""
    set_script_prefix(prefix)
    try:
        yield
    finally:
        clear_script_prefix()


# --- other prefixes, and the site under a sub-path -------------------------------------------------------

@pytest.mark.urls(URLS)
def test_under_other_prefixes_and_a_sub_path_every_link_and_redirect_stays_there(shop, client, settings, acme,
                                                                                   rival, staff):
    """No path of the demo's is written anywhere: pages, redirects, ``next=``, the poll's and the check's URLs, the
    API's job and page links all follow the shop's mounts and ``FORCE_SCRIPT_NAME`` (worked already; pinned)."""
    settings.FORCE_SCRIPT_NAME = "/store"
    with script_prefix("/store"):
        posted = client.post("/shop/search/", {"photo": photo(), "change": "in red"})
        assert posted.status_code == 303
        assert re.fullmatch(r"/store/shop/search/\?photo=[\w-]+&change=in\+red&method=pic2word_plus_image",
                            posted["Location"])
        page = client.get(posted["Location"].removeprefix("/store"))
        assert page.status_code == 200
        assert all(link.startswith(("/store/", "?", "data:image/jpeg;")) or link == "" for link in links(page)), \
            links(page)

        asked = client.get("/sellers/upload/")
        assert asked["Location"] == "/store/sellers/login/?next=/store/sellers/upload/"
        login = client.get("/sellers/login/", {"next": "/store/sellers/upload/"})
        assert 'name="next" value="/store/sellers/upload/"' in login.content.decode()
        logged = client.post("/sellers/login/", {"username": "acme", "password": "pw",
                                                 "next": "/store/sellers/upload/"})
        assert logged["Location"] == "/store/sellers/upload/"
        form = client.get("/sellers/upload/")
        assert 'data-check-url="/store/sellers/upload/check/"' in form.content.decode()
        uploaded = client.post("/sellers/upload/", files(HEADER + row("A-1")))
        job = ImportJob.objects.get()
        assert uploaded["Location"] == f"/store/sellers/imports/{job.pk}/"
        job_page = client.get(f"/sellers/imports/{job.pk}/")
        assert f'data-progress-url="/store/sellers/imports/{job.pk}/progress/"' in job_page.content.decode()
        assert all(link.startswith(("/store/", "#")) for link in links(job_page)), links(job_page)

        client.force_login(staff)
        chooses = client.get("/sellers/imports/")
        assert chooses["Location"] == "/store/sellers/act-for/?next=%2Fstore%2Fsellers%2Fimports%2F"
        chosen = client.post("/sellers/act-for/", {"merchant": rival.pk, "next": "/store/sellers/imports/"})
        assert chosen["Location"] == "/store/sellers/imports/"
        assert client.post("/sellers/logout/")["Location"] == "/store/sellers/login/"

        api = APIClient()
        api.force_authenticate(acme.user)
        assert api.post("/api/v2/imports/", files(HEADER + row("A-2")), format="multipart").status_code == 202
        oldest = ImportJob.objects.earliest("pk")  # the page's upload, the last of page 2
        ImportJob.objects.bulk_create([ImportJob(merchant_key=str(acme.pk), owner=acme.user) for _ in range(20)])
        listing = api.get("/api/v2/imports/", {"page": 2}).json()
        assert listing["previous"] == "http://testserver/store/api/v2/imports/"
        assert listing["results"][-1]["url"] == f"http://testserver/store/api/v2/imports/{oldest.pk}/"

    settings.FORCE_SCRIPT_NAME = None  # the sub-path from the WSGI server's environ instead
    with script_prefix("/shop-2"):
        posted = Client().post("/shop/search/", {"photo": photo()}, SCRIPT_NAME="/shop-2")
        assert posted["Location"].startswith("/shop-2/shop/search/?photo=")


# --- ATOMIC_REQUESTS --------------------------------------------------------------------------------------

@pytest.fixture
def atomic_requests():
    """``DATABASES["default"]["ATOMIC_REQUESTS"] = True`` for one test: each view runs in one transaction."""
    before = connection.settings_dict["ATOMIC_REQUESTS"]
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    yield
    connection.settings_dict["ATOMIC_REQUESTS"] = before


def test_with_atomic_requests_an_uploads_task_is_sent_once_the_request_has_committed(transactional_db, media,
                                                                                     atomic_requests, monkeypatch,
                                                                                     django_user_model):
    """A worker reads the job the task names: sent inside the request's transaction, it would find no row. The page,
    the API and the merchant's pages answer as without the setting (worked already; pinned)."""
    acme = MerchantFactory(name="Acme", slug="acme", user=django_user_model.objects.create_user("acme", password="pw"))
    sent = []

    def send_task(name, args=(), **options):
        sent.append((name, args[0], connection.in_atomic_block, ImportJob.objects.filter(pk=args[0]).exists()))

    monkeypatch.setattr(dispatch.current_app, "send_task", send_task)
    client = Client()
    client.force_login(acme.user)
    page = client.post("/merchant/upload/", files(HEADER + row("A-1")))
    assert page.status_code == 302
    api = APIClient()
    api.force_authenticate(acme.user)
    assert api.post("/api/imports/", files(HEADER + row("A-2")), format="multipart").status_code == 202
    jobs = list(ImportJob.objects.order_by("pk").values_list("pk", flat=True))
    assert sent == [(dispatch.RUN_IMPORT, pk, False, True) for pk in jobs]
    for url in ("/merchant/", "/merchant/upload/", "/merchant/imports/", page["Location"],
                f"{page['Location']}progress/"):
        assert client.get(url).status_code == 200, url


# --- CSRF in the session, an HttpOnly cookie; a Content-Security-Policy ----------------------------------------

@pytest.mark.urls(URLS)
def test_the_forms_and_the_upload_check_send_the_pages_token_not_the_cookies(shop, settings, acme):
    """With ``CSRF_USE_SESSIONS`` there is no csrftoken cookie, and ``CSRF_COOKIE_HTTPONLY`` hides it from scripts:
    merchant.js sends the form's token with its check, and every form posts its own (worked already; pinned)."""
    settings.CSRF_USE_SESSIONS = True
    settings.CSRF_COOKIE_HTTPONLY = True
    settings.CSRF_FAILURE_VIEW = "tests.conventions_urls.csrf_failure"
    client = Client(enforce_csrf_checks=True)
    box = client.get("/shop/search/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', box.content.decode()).group(1)
    assert client.post("/shop/search/", {"photo": photo(), "csrfmiddlewaretoken": token}).status_code == 303

    client.force_login(acme.user)
    form = client.get("/sellers/upload/")
    assert settings.CSRF_COOKIE_NAME not in client.cookies
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode()).group(1)
    check = re.search(r'data-check-url="([^"]+)"', form.content.decode()).group(1)
    manifest = files(HEADER + row("A-1"))["manifest"]
    assert client.post(check, {"manifest": manifest}, headers={"X-CSRFToken": token}).status_code == 200
    assert client.post(check, {"manifest": files(HEADER + row("A-1"))["manifest"]}).status_code == 403


INLINE = {
    "an inline script": r"<script(?![^>]*\ssrc=)[^>]*>",
    "a style element": r"<style[\s>]",
    "a style attribute": r"<[a-z][^>]*\sstyle=",
    "an event handler attribute": r"<[a-z][^>]*\son[a-z]+=",
}


def inline_code(response):
    html = response.content.decode()
    return {what: re.findall(pattern, html, re.IGNORECASE) for what, pattern in INLINE.items()
            if re.search(pattern, html, re.IGNORECASE)}


@pytest.mark.urls(URLS)
def test_the_pages_have_no_inline_script_or_style_for_a_strict_content_security_policy(shop, client, acme,
                                                                                        django_user_model):
    """``script-src 'self'; style-src 'self'``: the admin's index page kept its styles in a ``<style>`` element,
    which such a policy drops (the page lost its layout). The shopper's and merchant's pages have none."""
    posted = client.post("/shop/search/", {"photo": photo(), "change": "in red"})
    pages = [client.get(posted["Location"]), client.get(f"/shop/p/{shop[0].pk}/", {"change": "in red"})]
    client.force_login(acme.user)
    client.post("/sellers/upload/", files(HEADER + row("A-1")))
    job = ImportJob.objects.get()
    pages += [client.get(url) for url in ("/sellers/", "/sellers/upload/", "/sellers/imports/",
                                          f"/sellers/imports/{job.pk}/")]
    client.logout()
    pages.append(client.get("/sellers/login/"))
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    pages += [client.get(url) for url in ("/backoffice/p2w_search/embeddingmodel/index/",
                                          "/backoffice/p2w_search/productimage/", "/backoffice/catalog/product/")]
    assert [response.status_code for response in pages] == [200] * len(pages)
    assert {page.request["PATH_INFO"]: inline_code(page) for page in pages if inline_code(page)} == {}


# --- i18n_patterns, a language that groups thousands --------------------------------------------------------

@pytest.fixture
def french(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE[:3], "django.middleware.locale.LocaleMiddleware",
                           *settings.MIDDLEWARE[3:]]
    settings.LANGUAGE_CODE = "fr"
    settings.LANGUAGES = [("fr", "Français"), ("en", "English")]
    settings.USE_THOUSAND_SEPARATOR = True  # "1 600", "10 485 760", "0,5739"


@pytest.mark.urls("tests.conventions_i18n_urls")
def test_in_french_with_grouped_thousands_numbers_read_by_scripts_and_forms_stay_plain(shop, client, french, staff):
    """Django localizes every number a template writes: like_this.js read ``data-max-side="1 600"`` as 1 pixel
    (each photo sent as a speck) and ``data-max-bytes`` as 10 bytes; staff acting for merchant 12345 sent
    ``12 345`` back, which the page refused as no merchant in the list."""
    posted = client.post("/fr/shop/search/", {"photo": photo(), "change": "in red"})
    assert posted.status_code == 303 and posted["Location"].startswith("/fr/shop/search/?photo=")
    html = client.get(posted["Location"]).content.decode()
    assert f'data-max-side="{MAX_SIDE}" data-max-bytes="{app_settings.MAX_IMAGE_BYTES}"' in html
    scores = re.findall(r'data-score="([^"]*)"', html)
    assert scores and all(re.fullmatch(r"-?\d+\.\d{4}", score) for score in scores), scores

    big = MerchantFactory(pk=12345, name="Big", slug="big")
    assert client.get("/fr/sellers/imports/")["Location"] == "/fr/sellers/login/?next=/fr/sellers/imports/"
    client.force_login(staff)
    assert client.get("/fr/sellers/imports/")["Location"] == "/fr/sellers/act-for/?next=%2Ffr%2Fsellers%2Fimports%2F"
    choose = client.get("/fr/sellers/act-for/").content.decode()
    assert '<option value="12345"' in choose
    value = re.search(r'<option value="([^"]*)"[^>]*>Big<', choose).group(1)
    chosen = client.post("/fr/sellers/act-for/", {"merchant": value, "next": "/fr/sellers/imports/"})
    assert (chosen.status_code, chosen["Location"]) == (302, "/fr/sellers/imports/")
    assert "data-acting-for>Big<" in client.get("/fr/sellers/imports/").content.decode()
    assert big.pk == 12345


# --- sessions in signed cookies, or in the cache --------------------------------------------------------------

@pytest.mark.urls(URLS)
@pytest.mark.parametrize("engine", ["django.contrib.sessions.backends.signed_cookies",
                                    "django.contrib.sessions.backends.cache"])
def test_the_kept_photo_and_the_act_for_choice_live_in_any_session_engine(shop, client, settings, engine, staff,
                                                                          rival):
    """The photo's owner id and the merchant staff act for are all the session holds; with no session row to key
    them (signed cookies) or a cache for a store, both still hold across requests (worked already; pinned)."""
    settings.SESSION_ENGINE = engine
    posted = client.post("/shop/search/", {"photo": photo(), "change": "in red"})
    kept = client.get(posted["Location"])
    assert kept.status_code == 200 and 'alt="Your photo"' in kept.content.decode()
    assert Client().get(posted["Location"]).status_code == 404  # another browser

    client.force_login(staff)  # a login cycles the session's key and keeps its data: the photo stays this browser's
    assert client.get(posted["Location"]).status_code == 200
    client.post("/sellers/act-for/", {"merchant": rival.pk})
    assert "data-acting-for>Rival<" in client.get("/sellers/imports/").content.decode()

"""Every web entry point while Redis (the cache) or PostgreSQL cannot be reached, and once it is back.

A service that is down is the server's problem and it passes: the answer is a 503 with
``Retry-After`` and a sentence (JSON under /api/, a page elsewhere), never a 500, nothing
half-written, and the same web process answers normally once the service is back.
"""

import io
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.core.files.storage import storages
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections
from django.test import RequestFactory

from p2w_search.models import ImportJob
from tests.conftest import wait_for
from tests.factories import png, solid_colour_shop, token_client
from tests.faults import crash_postgres_backends
from tests.test_faults import private_redis  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

DATABASE_DOWN = "The catalog database cannot be reached right now; nothing was changed. Try again shortly."


@pytest.fixture
def redis_cache(private_redis, settings):  # noqa: F811
    """Django's default cache on a Redis of this test's own (the demo's cache is Redis), the anonymous budget on."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"unix://{private_redis.socket}"}}
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "3/min"}
    return private_redis


def searches(shop):
    """(method, path, data) of every anonymous search: the API's four and the storefront's."""
    product, image = shop[0].pk, shop[0].p2w_images.get().pk
    return [("get", "/api/search/text/?q=red", None), ("post", "/api/search/image/", {"image_id": image}),
            ("post", "/api/search/composed/", {"product": product, "text": "in red"}),
            ("get", f"/api/search/similar/?product={product}", None), ("get", "/?q=red", None),
            ("get", f"/product/{product}/?change=in+red", None)]


def send(client, method, path, data=None):
    """``method`` ``path`` with ``data``: JSON to the API, a form to a page."""
    if not data:
        return getattr(client, method)(path)
    return getattr(client, method)(path, data, format="json" if path.startswith("/api/") else "multipart")


def test_searches_go_on_uncounted_while_the_cache_is_down_and_are_counted_again_once_it_is_back(redis_cache):
    """The anonymous budget lives in the cache: with Redis down every search was a 500 (redis.ConnectionError
    from the throttle). Down, they are answered, uncounted; back, the budget counts and refuses again."""
    from rest_framework.test import APIClient

    shop = solid_colour_shop()
    client = APIClient(raise_request_exception=False)
    redis_cache.crash()
    for method, path, data in searches(shop) * 2:  # twice the budget of 3: nothing is counted
        assert send(client, method, path, data).status_code == 200, path

    redis_cache.start()
    assert [client.get("/api/search/text/", {"q": "red"}).status_code for _ in range(4)] == [200, 200, 200, 429]


@contextmanager
def database_away(tmp_path):
    """PostgreSQL does not answer this process: its connections go to a socket folder where nothing listens."""
    saved = {alias: connections[alias].settings_dict["HOST"] for alias in connections}
    for alias in connections:
        connections[alias].close()
        connections[alias].settings_dict["HOST"] = str(tmp_path)
    try:
        yield
    finally:
        for alias in connections:
            connections[alias].close()
            connections[alias].settings_dict["HOST"] = saved[alias]


def entry_points(shop, job):
    """(method, path, data, who) of the web's entry points: who is None (anonymous), "merchant" or "staff"."""
    return [*[(*search, None) for search in searches(shop)],
            ("get", "/api/products/", None, None), ("get", f"/api/products/{shop[0].pk}/", None, None),
            ("get", "/api/imports/", None, "merchant"), ("get", f"/api/imports/{job}/", None, "merchant"),
            ("get", f"/api/imports/{job}/files/manifest/", None, "merchant"),
            ("get", "/", None, None), ("get", f"/product/{shop[0].pk}/", None, None),
            ("post", "/merchant/login/", {"username": "acme", "password": "pw"}, None),
            ("get", "/merchant/", None, "merchant"), ("get", "/merchant/upload/", None, "merchant"),
            ("get", "/merchant/imports/", None, "merchant"),
            ("get", f"/merchant/imports/{job}/progress/", None, "merchant"),
            ("get", "/admin/p2w_search/embeddingmodel/index/", None, "staff"),
            ("get", "/admin/p2w_search/productimage/", None, "staff")]


def catalog_files():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("tee.png", png())
    archive.seek(0)
    archive.name = "images.zip"
    manifest = io.BytesIO(b"sku,title,category,price,images\nTEE-1,Tee,t-shirt,9.50,tee.png\n")
    manifest.name = "catalog.csv"
    return {"manifest": manifest, "archive": archive}


def uploads_kept():
    root = Path(storages["p2w_uploads"].location)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_every_entry_point_answers_503_while_postgresql_cannot_be_reached_and_200_once_it_is_back(
        acme, admin_user, tmp_path):
    """Every page and endpoint was a 500 ("Server Error (500)") while PostgreSQL did not answer."""
    from rest_framework.test import APIClient

    shop = solid_colour_shop()
    api = token_client(acme.user)
    job = api.post("/api/imports/", catalog_files(), format="multipart").json()["id"]
    clients = {None: APIClient(raise_request_exception=False), "merchant": APIClient(raise_request_exception=False),
               "staff": APIClient(raise_request_exception=False)}
    clients["merchant"].force_login(acme.user)
    clients["staff"].force_login(admin_user)
    api.raise_request_exception = False
    kept = uploads_kept()
    points = entry_points(shop, job)

    with database_away(tmp_path):
        for method, path, data, who in points:
            response = send(api if path.startswith("/api/imports/") else clients[who], method, path, data)
            assert (response.status_code, response.get("Retry-After")) == (503, "30"), (path, response.content[:300])
            if path.startswith("/api/"):
                assert response.json() == {"detail": DATABASE_DOWN}, path
            else:
                assert DATABASE_DOWN in response.content.decode(), path
        refused = api.post("/api/imports/", catalog_files(), format="multipart")
        assert (refused.status_code, refused.json()) == (503, {"detail": DATABASE_DOWN})

    assert uploads_kept() == kept and list(ImportJob.objects.values_list("pk", flat=True)) == [job]  # nothing written
    for method, path, data, who in points:
        response = send(api if path.startswith("/api/imports/") else clients[who], method, path, data)
        assert response.status_code in (200, 302), path  # the login answers with its redirect


def wsgi_get(path):
    """GET ``path`` through Django's own WSGI handler: the request cycle of a web process, with the signals that the
    test client leaves out (``close_old_connections`` at its start and end: what keeps and checks a connection)."""
    statuses = []
    environ = RequestFactory().get(path).environ
    body = b"".join(WSGIHandler()(environ, lambda status, headers: statuses.append(status)))
    return int(statuses[0].split()[0]), body


@pytest.mark.usefixtures("nested_sessions_done")
def test_the_first_request_after_a_postgresql_restart_is_answered_on_a_new_connection(settings, test_database_url):
    """The web process keeps its connection between requests (CONN_MAX_AGE); a restart of PostgreSQL ends it.
    The first request after the restart must not be the one that finds out (a 500 or a 503): the connection's
    health check replaces it. Why a crash and not ``pg_ctl restart``: see ``tests.faults.crash_postgres_backends``."""
    solid_colour_shop()
    assert connection.settings_dict["CONN_MAX_AGE"] > 0 and connection.settings_dict["CONN_HEALTH_CHECKS"]
    assert wsgi_get("/api/search/text/?q=red")[0] == 200
    kept = connection.connection
    assert kept is not None, "the web process should keep its connection for the next request"

    other = psycopg.connect(test_database_url, autocommit=True)  # a backend of another client, for the crash to kill
    connection.connection = None  # crash_postgres_backends closes what it is given: keep ours, as a web process
    try:
        pids = crash_postgres_backends(connection)
    finally:
        connection.connection = kept
        other.close()
    assert pids
    wait_for(lambda: _accepts(test_database_url), timeout=60, message="PostgreSQL back")
    started = time.monotonic()
    assert [wsgi_get("/api/search/text/?q=red")[0], wsgi_get("/")[0]] == [200, 200]
    assert connection.connection is not kept and time.monotonic() - started < 10


def _accepts(url):
    try:
        with psycopg.connect(url, connect_timeout=2) as probe:
            probe.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False

import os
import time
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings
from django.core.cache import cache

from tests import nested, warm_start
from tests.workers import Worker


def pytest_configure(config):
    # Before collection: a test module that builds the WSGI application as it is imported (test_fuzz_api.py) starts
    # whitenoise's middleware, which warns when STATIC_ROOT is missing (a fresh checkout's first run).
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


def pytest_ignore_collect(collection_path, config):
    """In a whole run the browser tests are a session of their own beside this one (test_browser_session.py);
    otherwise they are collected here, and that file is not."""
    if collection_path == nested.BROWSER_TESTS:
        return True if nested.browser_tests_beside(config) else None
    if collection_path == nested.BROWSER_TESTS.parent / "test_browser_session.py":
        return None if nested.browser_tests_beside(config) else True
    return None


@pytest.fixture(autouse=True)
def empty_cache():
    """Every test starts from an empty default cache: the anonymous search budget is counted there."""
    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def clip_checkpoints():
    """Write the tiny test CLIPs (seeded random weights) once; they load like real checkpoints."""
    from shop_demo.clip import write_random_checkpoint

    for alias, seed in (("default", 0), ("next", 1)):
        config = settings.P2W_SEARCH["EMBEDDERS"][alias]
        if not Path(config["PRETRAINED"]).exists():
            write_random_checkpoint(model=config["MODEL"], config=config["MODEL_CONFIG"],
                                    out=config["PRETRAINED"], seed=seed)
    mapping = Path(settings.P2W_SEARCH["EMBEDDERS"]["default"]["MAPPING"])
    if not mapping.exists():
        write_random_mapping(mapping)


@pytest.fixture(scope="session", autouse=True)
def nested_sessions(request, clip_checkpoints):
    """The work that runs beside this session (tests/nested.py), started with the first test when its test is selected.

    After the test CLIPs are written, which the test shops read too. It is stopped at the end
    if it still runs (a session cut short).
    """
    started = nested.start_selected(request)
    yield started
    for session in started:
        session.stop()


@pytest.fixture(scope="session", autouse=True)
def warm_starter(request):
    """Start importing torch for the tests' workers with the first test, when a selected test starts workers."""
    if any("start_worker" in item.fixturenames for item in request.session.items):
        warm_start.starter.prepare()
    return warm_start.starter


@pytest.fixture(scope="session")
def nested_sessions_done(nested_sessions):
    """Wait until the work beside this session has ended: for a test that restarts the shared PostgreSQL or times work.

    Its failures are left to the tests that report it.
    """
    for work in nested_sessions:
        with suppress(Exception):
            work.wait()


def write_random_mapping(path):
    """A Pic2Word mapping with seeded random weights for the tiny default CLIP."""
    from dataclasses import asdict

    import torch

    from p2w_search.embedders import get_embedder
    from p2w_search.pic2word import MappingNetwork, save_mapping

    loaded = get_embedder().load()
    torch.manual_seed(0)
    mapping = MappingNetwork(embed_dim=loaded.identity.dimensions, middle_dim=64,
                             output_dim=loaded.model.token_embedding.embedding_dim)
    save_mapping(mapping, path, clip_identity=asdict(loaded.identity))


@pytest.fixture
def media(settings, tmp_path):
    """Product files (and merchants' private uploads) of one test go to folders of their own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {**settings.STORAGES, "p2w_uploads": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "uploads")}}}
    return settings.MEDIA_ROOT


# The demo's merchants of the merchant pages' tests (tests/test_merchant_pages.py and the files beside it); a file
# whose tests need committed rows (transactional_db) has its own.

@pytest.fixture
def acme(db, django_user_model):
    from tests.factories import MerchantFactory

    return MerchantFactory(name="Acme", slug="acme", user=django_user_model.objects.create_user("acme", password="pw"))


@pytest.fixture
def rival(db, django_user_model):
    from tests.factories import MerchantFactory

    return MerchantFactory(name="Rival", slug="rival",
                           user=django_user_model.objects.create_user("rival", password="pw"))


@pytest.fixture
def staff(db, django_user_model):
    """Staff who may see every upload (as in the admin) and act for merchants (add and change their products)."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        codename__in=["view_importjob", "add_product", "change_product"]))
    return user


@pytest.fixture(scope="session")
def test_database_url(django_db_setup, django_db_blocker):
    """DATABASE_URL of the test database, for worker processes."""
    from django.db import connection

    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()


@contextmanager
def empty_database(test_database_url, prefix="demo"):
    """A new, empty database on the test server, dropped afterwards; yields its URL."""
    server = urlsplit(test_database_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = server._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def start_worker(test_database_url, tmp_path_factory):
    """Start real Celery workers for one test; all are killed afterwards (SIGKILL).

    Not stopped: a warm shutdown costs a worker 1-3 s and is not under test here (the demo's
    stop under load is: tests/test_demo_supervision.py). A message a killed worker held goes
    back to its queue only after the visibility timeout, and names rows of its own test,
    which the next test's workers skip as vanished.

    ``wait=False`` returns before the worker answers, so that several start side by side
    (each spends seconds importing torch); call ``wait_ready()`` on each before using them.
    """
    workers = []
    log_dir = tmp_path_factory.mktemp("worker-logs")

    def start(queues=None, env=None, pool="solo", concurrency=1, wait=True):
        queues = queues or [settings.P2W_SEARCH["BULK_QUEUE"], settings.P2W_SEARCH["QUERY_QUEUE"]]
        worker = Worker(test_database_url, queues, env=env, log_dir=log_dir, pool=pool, concurrency=concurrency)
        workers.append(worker)
        return worker.wait_ready() if wait else worker

    yield start
    for worker in workers:
        worker.kill()


def wait_for(condition, *, timeout=60, interval=0.2, message="condition"):
    """Poll ``condition`` until it returns a truthy value; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {message}")

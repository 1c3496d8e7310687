"""Fixtures of the Oscar shop's session: the tiny CLIP, a real Celery worker on the shop's settings, a catalog."""

from pathlib import Path

import pytest
from django.conf import settings

from tests.browser.conftest import browser, chromium_executable, page, screenshot  # noqa: F401  (its fixtures)
from tests.workers import Worker

OSCAR_SETTINGS = "tests.oscar_shop.myshop.test_settings"


@pytest.fixture(scope="session", autouse=True)
def clip_checkpoints():
    """The tiny test CLIP and its mapping (tests/conftest.py writes the same files in the main session)."""
    from shop_demo.clip import write_random_checkpoint
    from tests.conftest import write_random_mapping

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    config = settings.P2W_SEARCH["EMBEDDERS"]["default"]
    if not Path(config["PRETRAINED"]).exists():
        write_random_checkpoint(model=config["MODEL"], config=config["MODEL_CONFIG"], out=config["PRETRAINED"],
                                seed=0)
    if not Path(config["MAPPING"]).exists():
        write_random_mapping(Path(config["MAPPING"]))


@pytest.fixture(scope="session", autouse=True)
def _fresh_database(request, django_db_setup, django_db_blocker):
    """Under ``--reuse-db``: empty the kept database, and drop those built from other migrations.

    The kept one may hold what a session that died mid-test left; the others were built by
    earlier versions of the migrations (their key is in the name, myshop/test_settings.py).
    """
    if not request.config.getoption("reuse_db"):
        return
    from django.core.management import call_command
    from django.db import connection

    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)
        with connection._nodb_cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
                           [settings.TEST_DATABASE_PREFIX.replace("_", r"\_") + "%", connection.settings_dict["NAME"]])
            for (name,) in cursor.fetchall():
                cursor.execute(f'DROP DATABASE "{name}"')


@pytest.fixture(scope="session")
def worker(test_database_url, tmp_path_factory):
    """One real Celery worker for the session, on the bulk and query queues, with the Oscar shop's settings."""
    queues = [settings.P2W_SEARCH["BULK_QUEUE"], settings.P2W_SEARCH["QUERY_QUEUE"]]
    process = Worker(test_database_url, queues, env={"DJANGO_SETTINGS_MODULE": OSCAR_SETTINGS},
                     log_dir=tmp_path_factory.mktemp("worker-logs"))
    try:
        yield process.wait_ready()
    finally:
        process.stop()


@pytest.fixture
def shop(db):
    from tests.oscar_shop.tests.catalog import Shop

    return Shop()

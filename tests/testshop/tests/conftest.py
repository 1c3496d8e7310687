"""Fixtures of the test shop's session; tests/conftest.py's (media, start_worker, wait_for) apply too."""

from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from tests.testshop.tests import shop


@pytest.fixture(scope="session", autouse=True)
def clip_checkpoints():
    """The tiny test CLIP and its mapping (the main suite's files, written here when missing)."""
    from shop_demo.clip import write_random_checkpoint
    from tests.conftest import write_random_mapping

    config = settings.P2W_SEARCH["EMBEDDERS"]["default"]
    if not Path(config["PRETRAINED"]).exists():
        write_random_checkpoint(model=config["MODEL"], config=config["MODEL_CONFIG"], out=config["PRETRAINED"],
                                seed=0)
    if not Path(config["MAPPING"]).exists():
        write_random_mapping(Path(config["MAPPING"]))


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture(scope="session")
def committed_catalog(django_db_setup, django_db_blocker, tmp_path_factory):
    """The catalog (shop.build), built once per session and committed, its images embedded in this process.

    Each test runs in a transaction of its own that is rolled back, so it may change the
    catalog; its files are in a media folder of this session. pytest-django runs the
    transactional tests (the workers') after the others, and they start from a cleared database.
    """
    folder = tmp_path_factory.mktemp("testshop-files")
    storages = {**settings.STORAGES, "p2w_uploads": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                       "OPTIONS": {"location": str(folder / "uploads")}}}
    files = override_settings(MEDIA_ROOT=folder / "media", STORAGES=storages)
    files.enable()
    with django_db_blocker.unblock():
        shop.build()  # in autocommit: the signals' on-commit work runs at once
        shop.embed_pending()
    yield
    files.disable()


@pytest.fixture
def catalog(committed_catalog, db):
    """The test shop's catalog, as fresh instances."""
    return shop.load()


@pytest.fixture
def empty_queues():
    """This session's queues emptied: tasks that earlier tests sent and no worker took are no work now."""
    from celery import current_app

    with current_app.connection_for_write() as connection:
        for queue in (settings.P2W_SEARCH["BULK_QUEUE"], settings.P2W_SEARCH["QUERY_QUEUE"]):
            try:
                connection.default_channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - a queue nobody declared yet is empty
                pass

"""The Oscar shop's settings pointed at the test run: its services, the tiny test CLIP, queues of its own.

Nothing here is what a shop writes to use p2w-search; it is what the test harness changes.
The database and Redis are the test run's (``DATABASE_URL`` / ``REDIS_URL`` from ``bin/test``,
or the embedded ones under ``P2W_VAR_DIR``). The test database is ``test_p2w_oscar_<key>``, apart
from the main session's ``test_<its database>`` that runs at the same time; the key is a digest of
the migrations it is built from, so that a session run with ``--reuse-db`` (tests/test_oscar_shop.py)
reuses it only while they stay the same: Oscar's 130 migrations take a minute or more here. The
queues carry a suffix of this session's own, which its worker processes inherit.
"""

import hashlib
import os
import time
from pathlib import Path

import django
import oscar
import sorl

from shop_demo import services

os.environ.setdefault("DATABASE_URL", services.embedded_database_url())
os.environ.setdefault("REDIS_URL", services.embedded_redis_url())
os.environ.setdefault("MYSHOP_VAR", str(services.var_dir() / "oscar-shop"))

from tests.oscar_shop.myshop.settings import *
from tests.oscar_shop.myshop.settings import CELERY_BEAT_SCHEDULE, DATABASES, P2W_SEARCH

QUEUE_SUFFIX = os.environ.setdefault("P2W_OSCAR_QUEUE_SUFFIX", f"-oscar-{os.getpid()}-{int(time.time())}")
TEST_MODELS = services.var_dir() / "test-models"
TESTS_DIR = services.REPO_DIR / "tests"


def _migrations_key():
    """A digest of the migration files of Django, Oscar, sorl-thumbnail and p2w_search (paths, sizes, times)."""
    roots = [Path(package.__file__).parent for package in (django, oscar, sorl)] + [services.REPO_DIR / "p2w_search"]
    digest = hashlib.sha256()
    for path in sorted(path for root in roots for path in root.rglob("migrations/*.py")):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


TEST_DATABASE_PREFIX = "test_p2w_oscar_"
DATABASES = {"default": {**DATABASES["default"], "TEST": {"NAME": TEST_DATABASE_PREFIX + _migrations_key()}}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

P2W_SEARCH = {
    **P2W_SEARCH,
    "EMBEDDERS": {"default": {
        "BACKEND": "p2w_search.embedders.openclip.OpenCLIPEmbedder",
        "MODEL": "p2w-test-tiny",
        "MODEL_CONFIG": str(TESTS_DIR / "clip" / "p2w-test-tiny.json"),
        "PRETRAINED": str(TEST_MODELS / "tiny-seed0.pt"),
        "MAPPING": str(TEST_MODELS / "tiny-seed0-mapping.pt"),
        "BATCH_SIZE": 8,
        "THREADS": 1,
    }},
    "QUERY_ENCODING": os.environ.get("P2W_QUERY_ENCODING", "local"),
    "QUERY_TIMEOUT": 20.0,
    "ANON_SEARCH_RATE": None,
    "BULK_QUEUE": f"p2w_bulk{QUEUE_SUFFIX}",
    "QUERY_QUEUE": f"p2w_query{QUEUE_SUFFIX}",
}
CELERY_BEAT_SCHEDULE = {name: {**entry, "options": {"queue": P2W_SEARCH["BULK_QUEUE"]}}
                        for name, entry in CELERY_BEAT_SCHEDULE.items()}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"p2w_search": {"handlers": ["console"], "level": "INFO"}},
}

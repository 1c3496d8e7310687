"""The demo shop's settings with a tiny CLIP, so tests run in seconds on a CPU.

The checkpoints are written by tests/conftest.py through the same open_clip path
that loads real weights; the Celery worker processes of the tests use these settings too.
"""

import os
import time
from pathlib import Path

from shop_demo.settings import *  # noqa: F403
from shop_demo.settings import CELERY_BROKER_TRANSPORT_OPTIONS, DATABASES, P2W_SEARCH, VAR_DIR

QUEUE_SUFFIX = os.environ.setdefault("P2W_TEST_QUEUE_SUFFIX", f"-test-{os.getpid()}-{int(time.time())}")
TESTS_DIR = Path(__file__).resolve().parent
TEST_MODELS = Path(VAR_DIR) / "test-models"
TINY_CONFIG = str(TESTS_DIR / "clip" / "p2w-test-tiny.json")

# A test that starts workers may give them a media folder of its own (tests/test_workers.py).
MEDIA_ROOT = Path(os.environ.get("P2W_TEST_MEDIA_ROOT") or Path(VAR_DIR) / "test-media")
# A second connection to the test database, as a read replica would be (tests/test_replica.py routes searches to it).
DATABASES = {**DATABASES, "replica": {**DATABASES["default"], "TEST": {"MIRROR": "default"}}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

P2W_SEARCH = {
    **P2W_SEARCH,
    "EMBEDDERS": {
        "default": {
            "BACKEND": os.environ.get("P2W_TEST_BACKEND", "p2w_search.embedders.openclip.OpenCLIPEmbedder"),
            "MODEL": "p2w-test-tiny",
            "MODEL_CONFIG": TINY_CONFIG,
            "PRETRAINED": str(TEST_MODELS / "tiny-seed0.pt"),
            "MAPPING": str(TEST_MODELS / "tiny-seed0-mapping.pt"),
            "BATCH_SIZE": 8,
            "THREADS": 1,
            "IMAGE_WEIGHT": 0.5,  # so that pic2word_plus_image, the default method, is not pic2word
        },
        # A second model (other weights, other dimension) for model-switch tests.
        "next": {
            "BACKEND": "p2w_search.embedders.openclip.OpenCLIPEmbedder",
            "MODEL": "p2w-test-tiny48",
            "MODEL_CONFIG": str(TESTS_DIR / "clip" / "p2w-test-tiny48.json"),
            "PRETRAINED": str(TEST_MODELS / "tiny48-seed1.pt"),
            "BATCH_SIZE": 8,
            "THREADS": 1,
        },
    },
    "IMPORT_SERIALIZER": os.environ.get("P2W_TEST_IMPORT_SERIALIZER", P2W_SEARCH["IMPORT_SERIALIZER"]),
    "QUERY_ENCODING": os.environ.get("P2W_QUERY_ENCODING", "local"),
    "QUERY_TIMEOUT": 20.0,
    "ANON_SEARCH_RATE": None,  # tests/test_imports.py turns it on where it is the subject
    "LOGIN_FAILURE_RATE": None,  # the session's failed logins share one address: tests/test_merchant_logins.py
    "PROMPTS": {"paper": "a photo of * , {text}", "that": "a photo of * that is {text}"},
    # Queues of this test session only: worker processes inherit the suffix through the environment,
    # and leftovers of an earlier, interrupted run in the same Redis are never consumed.
    "BULK_QUEUE": f"p2w_bulk{QUEUE_SUFFIX}",
    "QUERY_QUEUE": f"p2w_query{QUEUE_SUFFIX}",
}

# A redelivery test gives its workers a short visibility timeout (P2W_VISIBILITY_TIMEOUT); kombu
# looks for messages past it every interval x throttle seconds (100 s by default): every second here.
# Each look holds a lock in Redis for a few milliseconds; the tests SIGKILL a hundred workers, and one
# killed while it held the lock left it for kombu's 300 s, so that no worker of the next tests could
# give a message again (the redelivery test timed out). Here a lock left so lasts 5 s.
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "unacked_restore_interval": 1,
                                   "unacked_restore_throttle": 1, "unacked_mutex_expire": 5}

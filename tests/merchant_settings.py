"""tests.settings for the worker processes of the merchant pages' browser tests.

The cache is Redis, shared with the live server (the test switches it to the same), so the
rows a worker reports while an import runs reach the page (p2w_search/uploads/progress.py).
Its key prefix is this test session's, like the queues: an earlier session's counts in the
same Redis are never read.
"""

from tests.settings import *  # noqa: F403
from tests.settings import QUEUE_SUFFIX, REDIS_URL

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL.replace("redis+socket://", "unix://"),
        "KEY_PREFIX": f"p2w-test{QUEUE_SUFFIX}",
    }
}

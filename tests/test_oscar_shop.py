"""The django-oscar shop's suite (tests/oscar_shop/tests), run as a pytest session of its own.

The shop has its own settings (Oscar installed, p2w-search added by configuration), so its
tests cannot share this session's Django. The subprocess uses this run's PostgreSQL and
Redis (``DATABASE_URL`` / ``REDIS_URL``), its own test database (``test_p2w_oscar_shop``)
and queues of its own, and starts its own Celery worker and chromium.
"""

import os
import subprocess
import sys

import pytest

from tests.workers import REPO_DIR

pytestmark = [pytest.mark.worker, pytest.mark.browser]

OSCAR_SETTINGS = "tests.oscar_shop.myshop.test_settings"
TAIL = 6000  # characters of the session's output shown when it fails


@pytest.mark.timeout(900)
def test_the_oscar_shop_suite_passes():
    env = {key: value for key, value in os.environ.items() if key != "P2W_OSCAR_QUEUE_SUFFIX"}
    env["DJANGO_SETTINGS_MODULE"] = OSCAR_SETTINGS
    command = [sys.executable, "-m", "pytest", "tests/oscar_shop/tests", f"--ds={OSCAR_SETTINGS}",
               "--reuse-db", "-p", "no:cacheprovider", "-q", "-ra", "-W", "ignore::DeprecationWarning"]
    result = subprocess.run(command, check=False, cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=840)
    if result.returncode != 0:
        pytest.fail(f"the Oscar shop's session ({' '.join(command[2:])}) exited with {result.returncode}:\n"
                    f"{result.stdout[-TAIL:]}", pytrace=False)

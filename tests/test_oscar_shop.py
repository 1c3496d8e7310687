"""The django-oscar shop's suite (tests/oscar_shop/tests), run as a pytest session of its own.

The shop has its own settings (Oscar installed, p2w-search added by configuration), so its
tests cannot share this session's Django. The subprocess (tests/nested.py, started with this
session's first test) uses this run's PostgreSQL and Redis (``DATABASE_URL`` / ``REDIS_URL``),
its own test database (``test_p2w_oscar_<key>``) and queues of its own, and starts its own
Celery worker and chromium. This test waits for its end and fails with the tail of its output.
"""

import pytest

from tests.nested import SESSIONS

pytestmark = [pytest.mark.worker, pytest.mark.browser]

TAIL = 6000  # characters of the session's output shown when it fails
SESSION = SESSIONS["test_oscar_shop.py"]


@pytest.mark.timeout(SESSION.limit + 90)
def test_the_oscar_shop_suite_passes(nested_sessions, request):
    returncode, output = SESSION.start(request).wait()
    if SESSION.timed_out:
        pytest.fail(f"the Oscar shop's session ran longer than {SESSION.limit} s:\n{output[-TAIL:]}", pytrace=False)
    if returncode != 0:
        pytest.fail(f"the Oscar shop's session ({' '.join(SESSION.command[2:])}) exited with {returncode}:\n"
                    f"{output[-TAIL:]}", pytrace=False)

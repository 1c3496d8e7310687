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

SESSION = SESSIONS["test_oscar_shop.py"]


@pytest.mark.timeout(SESSION.limit + 90)
def test_the_oscar_shop_suite_passes(nested_sessions, request):
    SESSION.report(request, title="the Oscar shop", tail=6000)

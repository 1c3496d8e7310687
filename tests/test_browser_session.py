"""The browser tests (tests/browser), run as a pytest session of their own beside this one in a whole run.

They wait on chromium and the live server most of the time, so beside this session they use
the second core instead of the run's wall time. The subprocess (tests/nested.py, started with
this session's first test) uses this run's PostgreSQL and Redis, its own test database
(``test_p2w_browser``, tests/browser/settings.py) and queues of its own. With ``-k`` or ``-m``,
or when tests/browser is named, the browser tests are collected in this session instead and
this file is not (tests/conftest.py, ``pytest_ignore_collect``).
"""

import pytest

from tests.nested import SESSIONS

pytestmark = [pytest.mark.worker, pytest.mark.browser]

SESSION = SESSIONS["test_browser_session.py"]


@pytest.mark.timeout(SESSION.limit + 90)
def test_the_browser_tests_pass(nested_sessions, request):
    SESSION.report(request, title="the browser tests")

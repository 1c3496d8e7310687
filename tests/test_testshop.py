"""The app's tests on its own test shop (tests/testshop/), run as a pytest session of their own.

The test shop is another Django project (its own settings, URLs, user model and catalog),
so its tests cannot share this session's settings: they run in a subprocess with
``--ds=tests.testshop.settings`` (tests/nested.py, started with this session's first test),
on this run's PostgreSQL (a test database of its own, ``test_p2w_testshop``) and Redis
(queues of its own). The marker expression of this session (``-m "not worker"``) is passed
on, so the test shop's worker tests run when this session's would. This test waits for its
end and fails with the tail of that session's output.
"""

import pytest

from tests.nested import SESSIONS

SESSION = SESSIONS["test_testshop.py"]


@pytest.mark.timeout(SESSION.limit + 90)
def test_the_test_shops_suite_passes(nested_sessions, request):
    SESSION.report(request, title="the test shop")

"""The app's tests on its own test shop (tests/testshop/), run as a pytest session of their own.

The test shop is another Django project (its own settings, URLs, user model and catalog),
so its tests cannot share this session's settings: this test starts them in a subprocess
with ``--ds=tests.testshop.settings``, on this run's PostgreSQL (a test database of its
own, ``test_p2w_testshop``) and Redis (queues of its own), and fails with the tail of
that session's output. The marker expression of this session (``-m "not worker"``) is
passed on, so the test shop's worker tests run when this session's would.
"""

import os
import signal
import subprocess
import sys

import pytest

from tests.workers import REPO_DIR

# The test shop's session takes about 100 s on a busy 2-core machine; the default limit is 300 s.
LIMIT = 540


@pytest.mark.timeout(LIMIT + 30)
def test_the_test_shops_suite_passes(request):
    env = {key: value for key, value in os.environ.items() if key != "P2W_TESTSHOP_QUEUE_SUFFIX"}
    env["DJANGO_SETTINGS_MODULE"] = "tests.testshop.settings"
    command = [sys.executable, "-m", "pytest", "tests/testshop/tests", "--ds=tests.testshop.settings",
               "-p", "no:cacheprovider", "-q", "-rfEX", "--color=no"]
    markers = request.config.getoption("markexpr")
    if markers:
        command += ["-m", markers]
    process = subprocess.Popen(command, cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        output, _ = process.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)  # pytest's teardown then stops the workers it started
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(f"the test shop's session ran longer than {LIMIT} s:\n{output[-8000:]}", pytrace=False)
    if process.returncode == 5:
        pytest.skip(f"no test of the test shop's session matches -m {markers!r}")
    if process.returncode != 0:
        pytest.fail(f"the test shop's session failed (pytest exit status {process.returncode}):\n{output[-8000:]}",
                    pytrace=False)
    assert " passed" in output.strip().splitlines()[-1], output[-8000:]

"""Slow work that runs beside this session: the test shops' own pytest sessions, the browser tests, the demo's starts.

The Oscar shop (tests/oscar_shop/) and the test shop (tests/testshop/) are Django projects of
their own, so their tests run as pytest sessions of their own, on this run's PostgreSQL and
Redis with databases and queues of their own. The browser tests (tests/browser/) spend most
of their time waiting on chromium and the live server, so in a whole run they are a session
of their own too, on the second core (``browser_tests_beside``). ``test_demo_weights.py``
starts the demo twice (about 25 s each, mostly waiting on its processes), on a database and
a Redis of its own. All of these start when this session's first test does
(tests/conftest.py) and run while it goes on; the tests that report them wait for their
end. A test that restarts the shared PostgreSQL, or that times the machine, first waits for
them (the ``nested_sessions_done`` fixture).
"""

import importlib
import inspect
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.workers import REPO_DIR

BROWSER_TESTS = REPO_DIR / "tests" / "browser"


class NestedSession:
    """One test shop's pytest session: started once, in a process group of its own, its output in a file."""

    def __init__(self, name, test, tests, settings_module, *, limit, queue_suffix_variable, options=(),
                 pass_markers=False):
        self.name = name
        self.test = test
        self.tests = tests
        self.settings_module = settings_module
        self.limit = limit
        self.queue_suffix_variable = queue_suffix_variable
        self.options = list(options)
        self.pass_markers = pass_markers
        self.process = None
        self.timed_out = False

    @property
    def command(self):
        return [sys.executable, "-m", "pytest", self.tests, f"--ds={self.settings_module}", "-p", "no:cacheprovider",
                *self.options, *self.markers]

    def start(self, request=None):
        """Start the session (once); the ``-m`` expression of ``request``'s session is passed on if it takes it."""
        if self.process is not None:
            return self
        markers = request.config.getoption("markexpr") if request is not None else ""
        self.markers = ["-m", markers] if markers and self.pass_markers else []
        # Its own queue suffix (the settings choose one): never one inherited from a shell that ran it before.
        env = {key: value for key, value in os.environ.items() if key != self.queue_suffix_variable}
        env["DJANGO_SETTINGS_MODULE"] = self.settings_module
        self.output = tempfile.TemporaryFile(mode="w+", prefix=f"p2w-{self.name}-")
        self.process = subprocess.Popen(self.command, cwd=REPO_DIR, env=env, stdout=self.output,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.deadline = time.monotonic() + self.limit
        return self

    def wait(self):
        """Wait for the session's end (at most its limit from its start); return (exit status, output).

        A session past its limit is interrupted as Ctrl-C would (its teardown stops the
        workers it started), then killed; ``timed_out`` says so.
        """
        try:
            self.process.wait(timeout=max(self.deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.stop()
        self.output.seek(0)
        return self.process.returncode, self.output.read()

    def report(self, request, *, title, tail=8000):
        """The test that reports the session: wait for its end, then fail with the tail of its output, or skip when
        none of its tests matched the markers passed on."""
        returncode, output = self.start(request).wait()
        if self.timed_out:
            pytest.fail(f"{title}'s session ran longer than {self.limit} s:\n{output[-tail:]}", pytrace=False)
        if returncode == 5 and self.markers:
            pytest.skip(f"no test of {title}'s session matches {' '.join(self.markers)}")
        if returncode != 0:
            pytest.fail(f"{title}'s session ({' '.join(self.command[2:])}) exited with {returncode}:\n"
                        f"{output[-tail:]}", pytrace=False)
        assert " passed" in output.strip().splitlines()[-1], output[-tail:]

    def stop(self):
        """Interrupt the session if it still runs (SIGINT to its group), then kill it after a minute."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class BackgroundRun:
    """One test's slow work, run in a thread beside this session; its test waits for the result.

    ``target`` ("module:function") names a function whose parameters are session fixtures,
    looked up by name when it starts, as pytest would. Its own subprocesses must end by
    themselves within ``limit`` seconds: a thread cannot be interrupted.
    """

    def __init__(self, name, test, target, *, limit):
        self.name = name
        self.test = test
        self.target = target
        self.limit = limit
        self.thread = None
        self.result = self.error = None

    def start(self, request):
        """Start the work (once), with the session fixtures its function names, got from ``request``."""
        if self.thread is not None:
            return self
        module, name = self.target.split(":")
        function = getattr(importlib.import_module(module), name)
        arguments = [request.getfixturevalue(parameter) for parameter in inspect.signature(function).parameters]
        self.thread = threading.Thread(target=self._run, args=(function, arguments), name=self.name, daemon=True)
        self.deadline = time.monotonic() + self.limit
        self.thread.start()
        return self

    def _run(self, function, arguments):
        try:
            self.result = function(*arguments)
        except BaseException as error:  # raised again in the test that waits
            self.error = error

    def wait(self):
        """Wait for the work's end (at most its limit from its start); return its result or raise its error."""
        self.thread.join(timeout=max(self.deadline - time.monotonic(), 0))
        if self.thread.is_alive():
            raise TimeoutError(f"{self.name} ran longer than {self.limit} s")
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self):
        """Give the work a minute to end (a session cut short): its processes and database are cleaned up then."""
        if self.thread is not None:
            self.thread.join(timeout=60)


OSCAR_SETTINGS = "tests.oscar_shop.myshop.test_settings"

# By the file of the test that reports each; ``test`` names that test. Limits: the sessions take
# 35 to 90 s alone on 2 cores, the demo's two starts about 50 s; all take longer beside this session.
SESSIONS = {
    "test_oscar_shop.py": NestedSession(
        "oscar", "test_the_oscar_shop_suite_passes", "tests/oscar_shop/tests", OSCAR_SETTINGS, limit=840,
        queue_suffix_variable="P2W_OSCAR_QUEUE_SUFFIX",
        options=["--reuse-db", "-q", "-ra", "-W", "ignore::DeprecationWarning"]),
    "test_testshop.py": NestedSession(
        "testshop", "test_the_test_shops_suite_passes", "tests/testshop/tests", "tests.testshop.settings", limit=540,
        queue_suffix_variable="P2W_TESTSHOP_QUEUE_SUFFIX", options=["-q", "-rfEX", "--color=no"], pass_markers=True),
    "test_browser_session.py": NestedSession(
        "browser", "test_the_browser_tests_pass", "tests/browser", "tests.browser.settings", limit=840,
        queue_suffix_variable="P2W_TEST_QUEUE_SUFFIX", options=["-q", "-rfEX", "--color=no"]),
    "test_demo_weights.py": BackgroundRun(
        "demo-weights", "test_a_demo_started_with_new_weights_switches_its_searches_to_them",
        "tests.test_demo_weights:two_demo_starts", limit=420),
}


def start_selected(request):
    """Start the work whose reporting test is among the session's selected tests; return it."""
    selected = {(item.path.name, item.name) for item in request.session.items if item.path.parent.name == "tests"}
    return [work.start(request) for file, work in SESSIONS.items() if (file, work.test) in selected]


def browser_tests_beside(config):
    """Whether this session runs the browser tests as a session of its own beside it: in a whole run, not when it
    names them, nor when ``-k`` or ``-m`` chooses among the tests (they are collected here then)."""
    named = any(Path(arg.split("::")[0]).resolve().is_relative_to(BROWSER_TESTS) for arg in config.args)
    return not (named or config.option.keyword or config.option.markexpr)

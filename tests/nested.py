"""The test shops' own pytest sessions, run beside this one.

The Oscar shop (tests/oscar_shop/) and the test shop (tests/testshop/) are Django projects of
their own, so their tests run as pytest sessions of their own, on this run's PostgreSQL and
Redis with databases and queues of their own. They start when this session's first test
does (tests/conftest.py) and run while it goes on; the tests that report them
(test_oscar_shop.py, test_testshop.py) wait for their end. A test that restarts the shared
PostgreSQL, or that times the machine, first waits for them (the ``nested_sessions_done``
fixture).
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

from tests.workers import REPO_DIR


class NestedSession:
    """One test shop's pytest session: started once, in a process group of its own, its output in a file."""

    def __init__(self, name, tests, settings_module, *, limit, queue_suffix_variable, options=(), pass_markers=False):
        self.name = name
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

    def start(self, markers=""):
        """Start the session (once); ``markers`` is this session's ``-m`` expression, passed on if it takes it."""
        if self.process is not None:
            return self
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


OSCAR_SETTINGS = "tests.oscar_shop.myshop.test_settings"

# By the file of the test that reports each. Limits: each takes 35 to 90 s alone on 2 cores,
# longer beside this session.
SESSIONS = {
    "test_oscar_shop.py": NestedSession(
        "oscar", "tests/oscar_shop/tests", OSCAR_SETTINGS, limit=840, queue_suffix_variable="P2W_OSCAR_QUEUE_SUFFIX",
        options=["--reuse-db", "-q", "-ra", "-W", "ignore::DeprecationWarning"]),
    "test_testshop.py": NestedSession(
        "testshop", "tests/testshop/tests", "tests.testshop.settings", limit=540,
        queue_suffix_variable="P2W_TESTSHOP_QUEUE_SUFFIX", options=["-q", "-rfEX", "--color=no"], pass_markers=True),
}


def start_selected(items, markers):
    """Start the sessions whose reporting test is among ``items``; return them."""
    files = {item.path.name for item in items if item.path.parent.name == "tests"}
    return [SESSIONS[name].start(markers) for name in SESSIONS if name in files]

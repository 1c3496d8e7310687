"""shop_demo.services: the embedded Redis it starts keeps its data from one run to the next."""

import os
import subprocess
import sys

from tests.workers import REPO_DIR

# The URL is Celery's (redis+socket://PATH).
REDIS_CLIENT = ("import os, redis, sys; "
                "client = redis.Redis(unix_socket_path=os.environ['REDIS_URL'].removeprefix('redis+socket://')); ")


def services(var_dir, code):
    """``python -m shop_demo.services -- python -c CODE`` on its own var folder, with no Redis given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2W_") and k != "REDIS_URL"}
    # A database URL is given, so no PostgreSQL is started: only Redis is under test here.
    env.update(P2W_VAR_DIR=str(var_dir), DATABASE_URL="postgresql:///unused")
    return subprocess.run([sys.executable, "-m", "shop_demo.services", "--", sys.executable, "-c", code],
                          cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=60)


def test_the_embedded_redis_keeps_what_was_written_until_the_next_start(tmp_path):
    first = services(tmp_path, REDIS_CLIENT + "client.rpush('queue', 'a', 'b'); sys.exit(3)")
    assert first.returncode == 3, first.stderr  # the command's exit status is passed on
    assert f"embedded Redis: {tmp_path / 'redis' / 'redis.sock'}" in first.stderr
    second = services(tmp_path, REDIS_CLIENT + "print(client.lrange('queue', 0, -1))")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "[b'a', b'b']"

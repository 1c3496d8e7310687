"""shop_demo.services: the embedded Redis it starts keeps its data from one run to the next, and two runs share it."""

import os
import subprocess
import sys

from tests.workers import REPO_DIR

# The URL is Celery's (redis+socket://PATH).
REDIS_CLIENT = ("import os, redis, sys; "
                "client = redis.Redis(unix_socket_path=os.environ['REDIS_URL'].removeprefix('redis+socket://')); ")


def services_command(var_dir, code):
    """The arguments and environment of ``python -m shop_demo.services -- python -c CODE`` on ``var_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2W_") and k != "REDIS_URL"}
    # A database URL is given, so no PostgreSQL is started: only Redis is under test here.
    env.update(P2W_VAR_DIR=str(var_dir), DATABASE_URL="postgresql:///unused")
    return [sys.executable, "-m", "shop_demo.services", "--", sys.executable, "-c", code], env


def services(var_dir, code):
    """Run ``python -m shop_demo.services -- python -c CODE`` on its own var folder, with no Redis given."""
    argv, env = services_command(var_dir, code)
    return subprocess.run(argv, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=60)


def test_the_embedded_redis_keeps_what_was_written_until_the_next_start(tmp_path):
    first = services(tmp_path, REDIS_CLIENT + "client.rpush('queue', 'a', 'b'); sys.exit(3)")
    assert first.returncode == 3, first.stderr  # the command's exit status is passed on
    assert f"embedded Redis: {tmp_path / 'redis' / 'redis.sock'}" in first.stderr
    second = services(tmp_path, REDIS_CLIENT + "print(client.lrange('queue', 0, -1))")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "[b'a', b'b']"



def test_a_second_run_on_the_same_folder_joins_the_running_redis_and_leaves_it_to_the_first(tmp_path):
    """It started a second server on the socket, from the same files: the first run's new connections reached it,
    the first server never saw its writes, and its stop deleted the socket under the first run's processes."""
    argv, env = services_command(tmp_path, REDIS_CLIENT + "client.set('mark', 'first'); print('up', flush=True); "
                                                          "sys.stdin.read(); print(client.get('mark'))")
    first = subprocess.Popen(argv, cwd=REPO_DIR, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "up"
        second = services(tmp_path, REDIS_CLIENT + "print(client.get('mark')); client.set('mark', 'second')")
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == "b'first'"
        assert "(joined: another run on this folder started it and stops it)" in second.stderr
        out, err = first.communicate("", timeout=60)  # the first run's Redis still answers, with the second's write
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert out.strip() == "b'second'"

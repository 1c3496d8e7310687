"""A process that loaded torch exits without the interpreter's last collections over its heap
(bench/exit.py measures what that saves): the demo's processes, and any shop's workers."""

import os
import subprocess
import sys

from tests.workers import REPO_DIR


def run(code):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def test_a_demo_process_freezes_its_heap_at_exit_after_the_handlers_registered_before():
    # Registered before shop_demo's handler, so it runs after it: it sees what the exit will collect.
    output = run("import atexit, gc\n"
                 "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
                 "print('before', gc.get_freeze_count())\n"
                 "import shop_demo\n")
    assert output == ["before", "0", "frozen", "True"]


def test_a_worker_that_shuts_down_freezes_its_heap():
    output = run("import gc, django\n"
                 "django.setup()\n"
                 "from celery.signals import worker_shutdown\n"
                 "import p2w_search.tasks\n"
                 "print(gc.get_freeze_count())\n"
                 "worker_shutdown.send(sender=None)\n"
                 "print(gc.get_freeze_count() > 0)\n")
    assert output == ["0", "True"]

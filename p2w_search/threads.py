"""Threads per process for image work that runs outside Python's lock.

Pillow decodes and encodes, and torch preprocesses, with the GIL released, so a catalog
import and an embedding worker prepare several images at once on a machine's cores
(bench/ingest.py measures what it buys). ``P2W_SEARCH["IMAGE_THREADS"]`` says how many;
with 1, every call runs at once in the caller's thread. The pool is made on first use in
each process: a Celery worker forks its children after the parent may have made one, and a
fork has no threads.
"""

import os
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait

from p2w_search.conf import app_settings

__all__ = ["image_threads", "run_all", "thread_count"]

_lock = threading.Lock()
_pools = {}  # (process id, threads) -> executor


def thread_count():
    """``IMAGE_THREADS``, or when it is None the process's cores, at most 4."""
    setting = app_settings.IMAGE_THREADS
    return min(len(os.sched_getaffinity(0)), 4) if setting is None else max(int(setting), 1)


def image_threads():
    """The process's executor for image work."""
    count = thread_count()
    if count == 1:
        return _IN_THE_CALLER
    key = (os.getpid(), count)
    with _lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(max_workers=count, thread_name_prefix="p2w-images")
        return _pools[key]


def run_all(function, items):
    """``[function(item) for item in items]`` in the threads; every call has ended before an error is raised."""
    futures = [image_threads().submit(function, item) for item in items]
    wait(futures)
    return [future.result() for future in futures]


class _InTheCaller(Executor):
    def submit(self, function, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(function(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


_IN_THE_CALLER = _InTheCaller()

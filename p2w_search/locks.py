"""PostgreSQL session advisory locks, taken by trying: a process never waits inside PostgreSQL for one.

A session lock goes away with its connection, so a process that dies does not keep it. It
is tried (``pg_try_advisory_lock``), and polled where the caller must wait, rather than
waited for in ``pg_advisory_lock``: a session waiting inside a statement holds a snapshot,
which a concurrent index build waits for in turn (p2w_search/index.py).
"""

import time
from contextlib import contextmanager

from django.db import connection

__all__ = ["advisory_lock", "advisory_lock_polled"]


@contextmanager
def advisory_lock(*keys):
    """Try to take the session advisory lock ``keys`` (one bigint, or two int4); yield whether it was taken.

    A lock taken is released on the way out.
    """
    args = ", ".join(["%s"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_lock({args})", list(keys))
        taken = cursor.fetchone()[0]
    try:
        yield taken
    finally:
        if taken:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock({args})", list(keys))


@contextmanager
def advisory_lock_polled(*keys, poll, waiting=None):
    """Hold the session advisory lock ``keys``, trying every ``poll`` seconds until it is taken.

    ``waiting()``, if given, is called once when the first try finds the lock held.
    """
    told = False
    while True:
        with advisory_lock(*keys) as taken:
            if taken:
                yield
                return
        if waiting is not None and not told:
            waiting()
            told = True
        time.sleep(poll)

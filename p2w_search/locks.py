"""PostgreSQL locks: session advisory locks taken by trying, and row locks waited for a bounded time.

A session lock goes away with its connection, so a process that dies does not keep it. It
is tried (``pg_try_advisory_lock``), and polled where the caller must wait, rather than
waited for in ``pg_advisory_lock``: a session waiting inside a statement holds a snapshot,
which a concurrent index build waits for in turn (p2w_search/index.py). A transaction lock
(``advisory_xact_lock``) is waited for: it guards a few statements, never a long piece of work.

A request that writes rows waits for the rows another transaction holds at most ``LOCK_WAIT_MS``
(``bounded_lock_wait``): an import holds the rows it wrote until it commits, minutes for a large
catalog, and a request waiting that long would hang its client and a web thread.
"""

import time
import zlib
from contextlib import contextmanager

from django.db import OperationalError, connection, transaction

__all__ = ["advisory_lock", "advisory_lock_polled", "advisory_xact_lock", "text_key", "LOCK_WAIT_MS", "RowsBusy",
           "bounded_lock_wait"]

LOCK_WAIT_MS = 5000


class RowsBusy(Exception):
    """A write waited ``LOCK_WAIT_MS`` for rows that another transaction holds, most likely an import's."""


@contextmanager
def bounded_lock_wait():
    """A transaction whose writes wait ``LOCK_WAIT_MS`` at most for a row another one holds; then RowsBusy.

    Nothing of the transaction is written then. Inside a transaction of the caller's (a savepoint:
    ``ATOMIC_REQUESTS`` makes every request one), the wait the caller had is set back on the way
    out: a setting made for the transaction lasts to its end, and the rest of the request ran with
    this bound.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout')")
            (previous,) = cursor.fetchone()
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{LOCK_WAIT_MS}ms"])
        try:
            yield
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            raise RowsBusy() from None
        # A rolled-back savepoint sets it back by itself; one that is kept does not.
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


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


def text_key(text):
    """An int4 key of ``text`` for the two-key form of an advisory lock (two texts may share one: they take turns)."""
    return zlib.crc32(text.encode()) - 2**31


def advisory_xact_lock(*keys):
    """Wait for the transaction advisory lock ``keys`` (one bigint, or two int4); it is held until the transaction ends.

    Waited for in the statement, unlike the session locks above: only for sections that hold it
    for a few statements (uploads.limits counts a merchant's jobs and saves one), so the
    snapshot a waiter holds is held for no longer than that.
    """
    args = ", ".join(["%s"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock({args})", list(keys))

"""How many uploads one merchant may have waiting: ``P2W_SEARCH["IMPORT_MAX_WAITING"]`` jobs queued or running.

Each waiting upload keeps up to ``IMPORT_MAX_BYTES`` in the upload storage and an import on
the bulk queue, which every merchant shares: a merchant's runaway script (or a stolen token)
would otherwise fill the disk and make every other merchant's imports wait behind its own.

``check_waiting`` is the cheap look a door takes before it reads an upload's files;
``hold_place`` is the rule itself, taken by ``importer.create_job`` in the transaction that
saves the job: the merchant's uploads take turns there (a transaction advisory lock), so two
uploads sent at once when one place is left cannot both count the same free place.
"""

from django.db import transaction

from p2w_search.conf import P2WImproperlyConfigured, app_settings
from p2w_search.locks import advisory_xact_lock, text_key
from p2w_search.models import ImportJob

__all__ = ["WAITING", "RETRY_AFTER_SECONDS", "TooManyWaiting", "max_waiting", "waiting_count", "check_waiting",
           "hold_place"]

# The states of a job that has not ended: it holds its files and a place in the bulk queue.
WAITING = (ImportJob.State.QUEUED, ImportJob.State.RUNNING)
# When a refused client may try again: most imports end within a minute; a client can also poll its jobs.
RETRY_AFTER_SECONDS = 60
# Namespace of the advisory locks under which a merchant's new jobs are counted; importer.IMPORT_LOCK is 0x7032 and
# index.INDEX_BUILD_LOCK 0x7033 (a one-key lock, which never meets a two-key one, but the numbers stay apart).
UPLOAD_LOCK = 0x7034


class TooManyWaiting(Exception):
    """The merchant has ``limit`` or more uploads waiting; ``str()`` is the message a merchant is shown."""

    def __init__(self, waiting, limit):
        self.waiting, self.limit = waiting, limit
        super().__init__(_message(waiting, limit))


def _message(waiting, limit):
    if waiting <= limit:  # == limit: a refusal with fewer waiting does not happen
        they = "it has" if waiting == 1 else "one of them has"
        return (f"You have {waiting} upload{'s' if waiting != 1 else ''} waiting to be imported, the most one merchant "
                f"may have; send this one once {they} ended.")
    # The limit was lowered below what the merchant already had waiting.
    return (f"You have {waiting} uploads waiting to be imported, and one merchant may have at most {limit}; send this "
            f"one once {waiting - limit + 1} of them have ended.")


def max_waiting():
    """``IMPORT_MAX_WAITING``: the most uploads one merchant may have waiting, or None for no limit."""
    limit = app_settings.IMPORT_MAX_WAITING
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise P2WImproperlyConfigured(f"P2W_SEARCH['IMPORT_MAX_WAITING'] must be a whole number of at least 1, or "
                                      f"None for no limit; it is {limit!r}.")
    return limit


def waiting_count(merchant_key):
    """How many jobs of ``merchant_key`` are queued or running (who created them does not matter: staff's count)."""
    return ImportJob.objects.filter(merchant_key=merchant_key, state__in=WAITING).count()


def check_waiting(merchant_key):
    """Raise TooManyWaiting if ``merchant_key`` has no place left for one more upload (no lock: a first look)."""
    limit = max_waiting()
    if limit is not None:
        waiting = waiting_count(merchant_key)
        if waiting >= limit:
            raise TooManyWaiting(waiting, limit)


def hold_place(merchant_key):
    """In a transaction that saves a job of ``merchant_key``: wait for its other uploads, then ``check_waiting``.

    The lock is held until the transaction ends, so the count and the job's INSERT are one
    step for this merchant; other merchants' uploads do not wait for it.
    """
    if max_waiting() is None:
        return
    assert transaction.get_connection().in_atomic_block, "hold_place runs in the transaction that saves the job"
    advisory_xact_lock(UPLOAD_LOCK, text_key(merchant_key))
    # Counted in a statement of its own, after the lock is taken: under READ COMMITTED it then sees the job
    # that the lock's last holder committed.
    check_waiting(merchant_key)

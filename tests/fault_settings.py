"""tests.settings for the worker and beat processes of tests/test_faults.py and tests/test_storage_faults.py.

Embedding tasks are small (``P2W_TEST_TASK_BATCH_SIZE`` images), so an upload becomes several
tasks to lose, and beat sends the sweep to this test session's bulk queue: the demo's
schedule names ``p2w_bulk``, which no test worker consumes.
"""

import os

from tests.fault_storage import from_environment
from tests.settings import *  # noqa: F403
from tests.settings import CELERY_BEAT_SCHEDULE, MEDIA_ROOT, P2W_SEARCH, STORAGES

P2W_SEARCH = {**P2W_SEARCH, "TASK_BATCH_SIZE": int(os.environ.get("P2W_TEST_TASK_BATCH_SIZE", "32"))}
CELERY_BEAT_SCHEDULE = {
    name: {**entry, "options": {**entry.get("options", {}), "queue": P2W_SEARCH["BULK_QUEUE"]}}
    for name, entry in CELERY_BEAT_SCHEDULE.items()
}

# A worker whose product image storage fails (tests/test_storage_faults.py): P2W_TEST_STORAGE_FAULT,
# e.g. "save:ENOSPC:blue" (tests/fault_storage.py).
_faulty_storage = from_environment(MEDIA_ROOT)
if _faulty_storage:
    STORAGES = {**STORAGES, "default": _faulty_storage}

"""tests.settings for the worker and beat processes of tests/test_faults.py.

Embedding tasks are small (``P2W_TEST_TASK_BATCH_SIZE`` images), so an upload becomes several
tasks to lose, and beat sends the sweep to this test session's bulk queue: the demo's
schedule names ``p2w_bulk``, which no test worker consumes.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import CELERY_BEAT_SCHEDULE, P2W_SEARCH

P2W_SEARCH = {**P2W_SEARCH, "TASK_BATCH_SIZE": int(os.environ.get("P2W_TEST_TASK_BATCH_SIZE", "32"))}
CELERY_BEAT_SCHEDULE = {
    name: {**entry, "options": {**entry.get("options", {}), "queue": P2W_SEARCH["BULK_QUEUE"]}}
    for name, entry in CELERY_BEAT_SCHEDULE.items()
}

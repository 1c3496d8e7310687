"""The sweep: send again the work left waiting too long, or all of it when the broker lost its messages.

PostgreSQL holds the work (import jobs queued or running, pending embeddings); a message in the
broker only tells a worker to do it. Celery beat runs the sweep every minute (tasks.sweep_pending)
and an admin runs it by hand (``manage.py p2w_index sweep``): both call ``sweep``, so they do the
same, the broker's marker included (``dispatch.lost_messages``). It also drops the HNSW indexes of
deleted models that their delete could not drop then (``index.drop_deleted_hnsw_indexes``).
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import InterfaceError, OperationalError
from django.utils import timezone

from p2w_search import dispatch, index, indexing, serving, shop_images
from p2w_search.conf import app_settings
from p2w_search.models import ImportJob, ProductImage, WorkerProcess

__all__ = ["Swept", "sweep", "TRANSIENT_ERRORS"]

logger = logging.getLogger(__name__)

# Errors that pass on their own: the database restarting, a dropped connection. Every task retries them
# (tasks.py takes this tuple from here: it may import the app, the app never imports it); the sweep raises them.
# Celery's Django fixup closes the broken connection before the retry runs.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Swept:
    """What one sweep sent again: import jobs, embeddings, the first model's start; whether the broker had lost
    its messages (then everything waiting was sent, whatever its age); and the deleted models' indexes it dropped."""

    broker_lost: bool
    jobs: int
    images: int
    model_started: bool
    indexes_dropped: tuple = ()


def sweep():
    """Send again what waits too long and return a Swept.

    When the broker lost its messages since the last sweep (``dispatch.lost_messages``: a Redis restarted without
    persistence or back from an older snapshot), everything waiting is sent again first, whatever its age: the
    import jobs queued or running and the pending embeddings no worker holds. Otherwise only what waited longer than
    ``SWEEP_AFTER``: a row queued a minute ago is most likely still in the queue behind others, and sending it again
    would double the queue.
    """
    with dispatch.lost_messages() as lost:
        now = timezone.now()
        # Lost: every job's message may be gone. A job whose message survived all the same (a worker running it)
        # is taken twice, harmlessly: the second waits for the merchant's lock, then finds the job ended.
        cutoff = now if lost else now - timedelta(seconds=float(app_settings.SWEEP_AFTER))
        jobs = _send_jobs(updated_before=cutoff)
        model_started = not serving.active_models().exists() and ProductImage.objects.exists()
        if model_started:  # the first upload's start_model was lost (Redis down or restarted): send it again
            dispatch.send(dispatch.START_MODEL)
        # Before the shop's sync below, whose rows are queued now: they are not sent twice.
        resent = indexing.queue_unclaimed() if lost else 0
    WorkerProcess.objects.filter(seen_at__lt=timezone.now() - timedelta(days=1)).delete()  # long gone
    # A delete whose drop found a long import holding the table (or an index being built) left its index, logged.
    dropped = tuple(index.drop_deleted_hnsw_indexes())
    _sync_shop_images()
    return Swept(broker_lost=lost, jobs=jobs, images=resent + indexing.sweep_pending(), model_started=model_started,
                 indexes_dropped=dropped)


def _send_jobs(*, updated_before):
    """Send again the import jobs queued or running that have not changed since ``updated_before``; return how many."""
    stale = ImportJob.objects.filter(state__in=[ImportJob.State.QUEUED, ImportJob.State.RUNNING],
                                     updated_at__lt=updated_before).order_by("pk").values_list("pk", flat=True)
    jobs = list(stale)
    for job_id in jobs:
        dispatch.send(dispatch.RUN_IMPORT, args=(job_id,))
    return len(jobs)


def _sync_shop_images():
    """Reconcile the shop's own images, changed where no signal saw it (bulk writes), when the shop has them."""
    if not shop_images.configured():
        return
    try:
        shop_images.sync()
    except TRANSIENT_ERRORS:
        raise
    except Exception:  # the shop's images must not keep the embeddings waiting: they are swept all the same
        logger.exception("the sync of the shop's images failed; the sweep goes on without it")

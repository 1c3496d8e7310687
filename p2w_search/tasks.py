"""Celery tasks: thin wrappers around indexing, uploads and query encoding; they take ids, not objects.

Embedding and import tasks acknowledge late, so the task of a worker killed mid-batch goes
back to the queue; the database, not the queue, says what is left to do (see indexing.py).
The app sends these tasks by name through ``dispatch`` and never imports this module.
"""

import gc
import logging
import os
from datetime import timedelta

from celery import shared_task
from celery.signals import (
    celeryd_after_setup,
    task_postrun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from p2w_search import dispatch, encoding, indexing, orphans, product_images, shop_images, workers
from p2w_search.conf import app_settings
from p2w_search.models import ImportJob, ProductImage, WorkerProcess
from p2w_search.uploads import importer, progress, retention

__all__ = ["embed_batch", "start_model", "sweep_pending", "encode_query", "run_import", "cleanup_storage",
           "sweep_orphan_files"]

logger = logging.getLogger(__name__)

# Seconds before an import that found its merchant's lock taken tries again.
LOCK_RETRY_SECONDS = 5

# Errors that pass on their own: the database restarting, a dropped connection. Celery's
# Django fixup closes the broken connection before the retry runs.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)

# The bulk tasks keep no result: PostgreSQL holds what they did, and nobody reads one.

# A worker's log says a result's size, never the result (a query vector was 78 % of it).
logging.getLogger("celery.app.trace").addFilter(workers.ResultSummary())


@celeryd_after_setup.connect
def _remember_worker(sender, instance, **kwargs):
    workers.remember_worker(sender, instance.app.amqp.queues.consume_from or {})


@worker_process_init.connect
def _warm_start(**kwargs):
    # Before the process takes a task: load the models, then report ready (the web and the admin read it).
    # Sent in each process of the prefork pool and by the solo pool.
    loaded = workers.warm_up()
    logger.info("worker process %s ready with %s", os.getpid(), ", ".join(loaded) or "no model")
    workers.start_heartbeat()


@worker_init.connect
def _warm_start_threads(sender=None, **kwargs):
    # The threads pool (the query worker's, for batching) runs tasks in the main process and
    # sends no worker_process_init: warm up here, before the consumer starts.
    pool = getattr(sender, "pool_cls", None)
    if "thread" in str(pool).lower():
        _warm_start()


@task_postrun.connect
def _count_task(**kwargs):
    workers.task_done()


@worker_process_shutdown.connect
def _stopped(**kwargs):
    workers.forget_process()


@worker_shutdown.connect
def _forget_main_process(**kwargs):
    # The solo and threads pools (the README's query worker runs the threads pool) run their tasks, and beat,
    # in the worker's main process, and Celery sends worker_process_shutdown only in the processes of the
    # prefork pool: without this, every clean stop of such a worker left its row, read as a process lost
    # (H006, "stopped reporting without a clean stop") for an hour after each restart. A prefork worker's
    # main process has no row of its own, so this deletes nothing there.
    workers.forget_process()


@worker_shutdown.connect
def _freeze_heap(**kwargs):
    # The worker has stopped consuming. Its exit would spend about 2 s in the interpreter's last
    # garbage collections over what torch and open_clip loaded; frozen, they are skipped (bench/exit.py).
    gc.freeze()


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=10,
)
def embed_batch(self, model_id, embedding_ids):
    """Embed the pending rows among ``embedding_ids`` under model ``model_id``, claimed under this task's id."""
    return indexing.embed_pending(model_id, embedding_ids, claim=self.request.id)


@shared_task(ignore_result=True, acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=10)
def start_model(alias="default"):
    """Register the model of embedder ``alias`` and queue every image it has not embedded."""
    model = indexing.register_model(alias)
    return indexing.queue_missing(model)


@shared_task(ignore_result=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=3)
def sweep_pending():
    """Queue again the embeddings and imports left waiting too long (run periodically by Celery beat).

    Return how many embeddings were queued. When the broker lost its messages since the last sweep
    (``dispatch.lost_messages``: a Redis restarted without persistence), everything waiting is sent
    again first, whatever its age: the import jobs queued or running and the pending embeddings no
    worker holds. Otherwise only what waited longer than ``SWEEP_AFTER``: a row queued a minute ago
    is most likely still in the queue behind others, and sending it again would double the queue.
    """
    with dispatch.lost_messages() as lost:
        now = timezone.now()
        # Lost: every job's message may be gone. A job whose message survived all the same (a worker running it)
        # is taken twice, harmlessly: the second waits for the merchant's lock, then finds the job ended.
        cutoff = now if lost else now - timedelta(seconds=float(app_settings.SWEEP_AFTER))
        stale_jobs = ImportJob.objects.filter(state__in=[ImportJob.State.QUEUED, ImportJob.State.RUNNING],
                                              updated_at__lt=cutoff).order_by("pk").values_list("pk", flat=True)
        for job_id in stale_jobs:
            dispatch.send(dispatch.RUN_IMPORT, args=(job_id,))
        if not indexing.active_models().exists() and ProductImage.objects.exists():
            # The first upload's start_model was lost (Redis down or restarted): send it again.
            dispatch.send(dispatch.START_MODEL)
        # Before the shop's sync below, whose rows are queued now: they are not sent twice.
        resent = indexing.queue_unclaimed() if lost else 0
    WorkerProcess.objects.filter(seen_at__lt=timezone.now() - timedelta(days=1)).delete()  # long gone
    if shop_images.configured():  # the shop's images changed where no signal saw it (bulk writes)
        try:
            shop_images.sync()
        except TRANSIENT_ERRORS:
            raise
        except Exception:  # the shop's images must not keep the embeddings waiting: they are swept all the same
            logger.exception("the sync of the shop's images failed; the sweep goes on without it")
    return resent + indexing.sweep_pending()


@shared_task(ignore_result=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=3)
def cleanup_storage():
    """Delete uploads past their retention and image files whose delete failed (run periodically by Celery beat)."""
    return {"uploads": retention.remove_expired_uploads(), "image_files": product_images.retry_file_deletions()}


@shared_task(ignore_result=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=3)
def sweep_orphan_files():
    """Delete image and upload files that no row refers to: a killed import's, a rolled-back save's (daily on beat)."""
    return orphans.remove_orphan_files()


@shared_task
def encode_query(model_id, kind, payload):
    """Encode a search query on a worker; the answer is ``encoding.encode_on_worker``'s."""
    return encoding.encode_on_worker(model_id, kind, payload)


@shared_task(bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=10)
def run_import(self, job_id):
    """Import catalog upload ``job_id``; a job that vanished or already ended is left alone."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or job.state in ImportJob.ENDED:
        return None
    with importer.merchant_lock(job.merchant_key) as taken:  # one import per merchant at a time
        if not taken:
            # Not an error: wait for the merchant's other import. If this message is lost, the sweep sends it again.
            raise self.retry(countdown=LOCK_RETRY_SECONDS, max_retries=None)
        job.refresh_from_db()
        if job.state in ImportJob.ENDED:  # done by the process that held the lock
            return None
        try:
            return importer.run_import(job, progress=progress.row_reporter(job.pk)).state
        except TRANSIENT_ERRORS:
            raise
        except Exception:  # a bug or a broken file must not leave the job "running" forever
            logger.exception("import %s failed", job_id)
            # A job the importer ended itself (its storage refused a file) keeps the reason it gave.
            ImportJob.objects.filter(pk=job_id).exclude(state__in=ImportJob.ENDED).update(
                state=ImportJob.State.FAILED, ended_at=timezone.now(),
                message="The import failed because of an error on the server; nothing was imported. "
                        "The error is logged; try again, or tell the shop's staff if it happens again.")
            raise

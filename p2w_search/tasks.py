"""Celery tasks: thin wrappers around indexing, uploads and query encoding; they take ids, not objects.

Embedding and import tasks acknowledge late, so the task of a worker killed mid-batch goes
back to the queue; the database, not the queue, says what is left to do (see indexing.py).
The app sends these tasks by name through ``dispatch`` and never imports this module.
"""

import gc
import logging
import os

from celery import shared_task
from celery.signals import (
    celeryd_after_setup,
    task_postrun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)
from django.utils import timezone

from p2w_search import encoding, indexing, orphans, product_images, serving, sweeping, workers
from p2w_search.models import ImportJob
from p2w_search.sweeping import TRANSIENT_ERRORS
from p2w_search.uploads import importer, progress, retention

__all__ = ["embed_batch", "start_model", "sweep_pending", "encode_query", "run_import", "cleanup_storage",
           "sweep_orphan_files"]

logger = logging.getLogger(__name__)

# Seconds before an import that found its merchant's lock taken tries again.
LOCK_RETRY_SECONDS = 5


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
    model = serving.register_model(alias)
    return indexing.queue_missing(model)


@shared_task(ignore_result=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=3)
def sweep_pending():
    """Send again the embeddings and imports left waiting too long (run periodically by Celery beat); return how many
    embeddings were queued.

    ``sweeping.sweep``, which ``manage.py p2w_index sweep`` runs too: everything waiting when the broker lost its
    messages since the last sweep, otherwise what waited longer than ``SWEEP_AFTER``.
    """
    return sweeping.sweep().images


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

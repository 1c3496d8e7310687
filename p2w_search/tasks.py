"""Celery tasks: thin wrappers around indexing and query encoding; they take ids, not objects.

Embedding tasks acknowledge late, so the task of a worker killed mid-batch goes back to
the queue; the database, not the queue, says what is left to do (see indexing.py).
"""

from datetime import timedelta

from celery import shared_task
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from p2w_search import imports, indexing, queries
from p2w_search.conf import app_settings
from p2w_search.models import ImportJob, ProductImage

__all__ = ["embed_batch", "start_model", "sweep_pending", "encode_query", "run_import"]

# Namespace of the advisory locks that keep an import job to one worker.
IMPORT_LOCK = 0x7032

# Errors that pass on their own: the database restarting, a dropped connection. Celery's
# Django fixup closes the broken connection before the retry runs.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)

# The bulk tasks keep no result: PostgreSQL holds what they did, and nobody reads one. A
# stored result made each send from a web process subscribe to Redis's result channel (with
# Redis down: 20 s of retries, then a RuntimeError) and a worker's finished batch fail to
# store it; tests/test_faults.py restarts Redis under both.


@shared_task(
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=10,
)
def embed_batch(model_id, embedding_ids):
    """Embed the pending rows among ``embedding_ids`` under model ``model_id``."""
    return indexing.embed_pending(model_id, embedding_ids)


@shared_task(ignore_result=True, acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=10)
def start_model(alias="default"):
    """Register the model of embedder ``alias`` and queue every image it has not embedded."""
    model = indexing.register_model(alias)
    return indexing.queue_missing(model)


@shared_task(ignore_result=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=3)
def sweep_pending():
    """Queue again the embeddings and imports left waiting too long (run periodically by Celery beat)."""
    cutoff = timezone.now() - timedelta(seconds=float(app_settings.SWEEP_AFTER))
    stale_jobs = ImportJob.objects.filter(state__in=[ImportJob.State.QUEUED, ImportJob.State.RUNNING],
                                          updated_at__lt=cutoff).values_list("pk", flat=True)
    for job_id in stale_jobs:
        run_import.apply_async(args=(job_id,), queue=app_settings.BULK_QUEUE)
    if not indexing.active_models().exists() and ProductImage.objects.exists():
        # The first upload's start_model was lost (Redis down or restarted): send it again.
        start_model.apply_async(queue=app_settings.BULK_QUEUE)
    return indexing.sweep_pending()


@shared_task
def encode_query(model_id, kind, payload):
    """Encode a search query on a worker; the answer is ``queries.encode_on_worker``'s."""
    return queries.encode_on_worker(model_id, kind, payload)


@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=2, max_retries=10)
def run_import(job_id):
    """Import catalog upload ``job_id``; a job that vanished or already ended is left alone."""
    # One worker per job: the sweep may queue a job again while a slow import still runs. The
    # session lock goes away with the connection, so a worker that dies does not keep it.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [IMPORT_LOCK, job_id])
        if not cursor.fetchone()[0]:
            return "running elsewhere"
    try:
        job = ImportJob.objects.filter(pk=job_id, state__in=[ImportJob.State.QUEUED, ImportJob.State.RUNNING]).first()
        if job is None:
            return None
        return imports.run_import(job).state
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # a bug or a broken file must not leave the job "running" forever
        ImportJob.objects.filter(pk=job_id).update(state=ImportJob.State.FAILED, message=f"import failed: {exc}")
        raise
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [IMPORT_LOCK, job_id])

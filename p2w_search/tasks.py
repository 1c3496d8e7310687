"""Celery tasks: thin wrappers around indexing and query encoding; they take ids, not objects.

Embedding tasks acknowledge late, so the task of a worker killed mid-batch goes back to
the queue; the database, not the queue, says what is left to do (see indexing.py).
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from p2w_search import indexing, queries

__all__ = ["embed_batch", "start_model", "sweep_pending", "encode_query"]

# Errors that pass on their own: the database restarting, a dropped connection. Celery's
# Django fixup closes the broken connection before the retry runs.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


@shared_task(
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


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=10)
def start_model(alias="default"):
    """Register the model of embedder ``alias`` and queue every image it has not embedded."""
    model = indexing.register_model(alias)
    return indexing.queue_missing(model)


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=3)
def sweep_pending():
    """Queue again what is pending for too long (run periodically by Celery beat)."""
    return indexing.sweep_pending()


@shared_task
def encode_query(model_id, kind, payload):
    """Encode a search query on a worker; return the vector as a list of floats.

    A query the model refuses comes back as ``{"field", "reason"}``, not as an exception,
    so the web process can answer 400 in the request's terms.
    """
    try:
        return queries.encode_locally(model_id, kind, payload)
    except queries.QueryRejected as exc:
        return {"field": exc.field, "reason": exc.reason}

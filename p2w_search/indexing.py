"""Load images, embed them in batches, store the vectors: the only writer of vectors.

PostgreSQL is the source of truth. An image to embed is a ``pending`` ImageEmbedding
row; tasks carry only ids. A task that is lost (a dead worker, a Redis restart) leaves
its rows pending, and ``sweep_pending`` queues them again; rows already ``ready`` are
never embedded twice. Which model serves searches, and the switch to another, is serving.py's.
"""

import logging
import uuid
from datetime import timedelta

import numpy as np
from django.core.exceptions import SuspiciousFileOperation
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from pgvector import HalfVector

from p2w_search import dispatch
from p2w_search.conf import app_settings, image_limits
from p2w_search.embedders import DEFAULT_ALIAS
from p2w_search.files import storage_of
from p2w_search.imaging import ImageRejected, load_image
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from p2w_search.serving import (
    CannotServe,
    IncompleteModel,
    ModelGone,
    active_models,
    embedder_for,
    model_progress,
    register_model,
    switch_serving,
)
from p2w_search.threads import run_all

# The serving model's names (serving.py) stay importable from here, where they were.
__all__ = [
    "MAX_ATTEMPTS", "queue_images", "queue_image_ids", "queue_on_commit", "queue_missing", "embed_pending",
    "sweep_pending", "queue_unclaimed", "retry_failed", "remove_from_index",
    "register_model", "active_models", "model_progress", "switch_serving", "embedder_for", "CannotServe",
    "IncompleteModel", "ModelGone",
]

logger = logging.getLogger(__name__)

# A row whose task was started this many times without finishing (the worker died each
# time, e.g. out of memory on that image) is marked failed instead of queued forever.
MAX_ATTEMPTS = 5


def queue_images(images):
    """Mark ``images`` pending under every active model and queue them after commit; return how many were queued.

    Images out of the index are left out. Their vectors under retired models are dropped: they
    show the picture as it was, and a retired model registered again embeds the images it lacks.
    With no model registered yet, a worker registers the default one first (and embeds them then).
    """
    return queue_image_ids([image.pk for image in images if image.in_index])


def queue_image_ids(image_ids):
    """``queue_images`` of images ``image_ids`` (all in the index), whatever their number, in three statements.

    Set-based: one DELETE of the retired models' rows, one INSERT ... ON CONFLICT DO UPDATE that adds the missing
    rows and makes the others pending (queued now, unclaimed), each with the ids as one array parameter; then
    ``embed_batch`` tasks of ``TASK_BATCH_SIZE`` rows sent after commit. The rows and the sends are as the
    row-by-row code made them (a bulk_create of every row, an UPDATE with an IN list of every id, 70,000 images
    in 25 s): a request cut off before its commit leaves nothing, after it the sweep sends what was not sent.
    """
    image_ids = sorted(set(image_ids))
    if not image_ids:
        return 0
    models = list(active_models())
    table = ImageEmbedding._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE image_id = ANY(%s) AND NOT (model_id = ANY(%s))",
                       [image_ids, [model.pk for model in models]])
        if not models:
            dispatch.send(dispatch.START_MODEL, kwargs={"alias": DEFAULT_ALIAS})
            return len(image_ids)
        now = timezone.now()
        cursor.execute(
            f"INSERT INTO {table} AS e (image_id, model_id, state, error, vector, norm, attempts, claimed_by, "
            "queued_at, updated_at) "
            "SELECT i, m, %s, '', NULL, NULL, 0, '', %s, %s FROM unnest(%s::bigint[]) i, unnest(%s::bigint[]) m "
            "ORDER BY i, m "
            "ON CONFLICT (image_id, model_id) DO UPDATE SET state = EXCLUDED.state, error = '', attempts = 0, "
            "claimed_by = '', queued_at = EXCLUDED.queued_at RETURNING e.model_id, e.id",
            [ImageEmbedding.State.PENDING, now, now, image_ids, [model.pk for model in models]],
        )
        _send_batches(cursor.fetchall())
    return len(image_ids)


def _send_batches(rows):
    """``_send`` for ``rows`` ((model id, embedding id), already pending and queued), model by model."""
    by_model = {}
    for model_id, pk in rows:
        by_model.setdefault(model_id, []).append(pk)
    for model_id, ids in sorted(by_model.items()):
        _send(model_id, sorted(ids))


def queue_on_commit(image_ids):
    """Queue images ``image_ids`` once the transaction commits, in batches with the others queued in it.

    What the save signals call (product_images.py): an admin or a shop's code that saves
    images one by one inside a transaction still sends one task per ``TASK_BATCH_SIZE``.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        _queue_by_id(set(image_ids))
        return
    for _, callback, _ in connection.run_on_commit:  # one callback per transaction collects them all
        # ... unless it ran already: a test's captureOnCommitCallbacks(execute=True) runs callbacks
        # and leaves them in the list, and ids added to one that ran were never queued.
        if hasattr(callback, "p2w_image_ids") and not callback.p2w_ran:
            callback.p2w_image_ids.update(image_ids)
            return

    def flush():
        flush.p2w_ran = True
        _queue_by_id(flush.p2w_image_ids)

    flush.p2w_image_ids, flush.p2w_ran = set(image_ids), False
    transaction.on_commit(flush)


def _queue_by_id(image_ids):
    with transaction.atomic():
        queue_images(list(ProductImage.objects.filter(pk__in=image_ids)))


def queue_missing(model):
    """Queue every image that has no embedding under ``model`` yet; return how many were queued.

    Pending rows of ``model`` that no task holds are queued too: those never queued, and those
    queued longer ago than the sweep waits (their batch may be lost). A row queued more recently
    is in a batch a worker has taken or will take: sending it again (a second start of the same
    model, ``p2w_index embed`` beside a worker's start) would free its claim, so that two workers
    embedded it.
    """
    missing = ProductImage.objects.filter(in_index=True).exclude(embeddings__model=model).values_list("pk", flat=True)
    ImageEmbedding.objects.bulk_create(
        [ImageEmbedding(image_id=pk, model=model) for pk in missing.iterator()], ignore_conflicts=True
    )
    in_flight_since = timezone.now() - timedelta(seconds=float(app_settings.SWEEP_AFTER))
    pending = list(
        ImageEmbedding.objects.filter(model=model, state=ImageEmbedding.State.PENDING)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=in_flight_since)).values_list("pk", flat=True)
    )
    _queue(model, pending)
    return len(pending)


def _queue(model, embedding_ids):
    """Send ``embed_batch`` tasks for ``embedding_ids`` once the transaction commits.

    A broker out of reach is logged, not raised (dispatch.send): the rows are committed
    pending, and the sweep queues them again.
    """
    if not embedding_ids:
        return
    ImageEmbedding.objects.filter(pk__in=embedding_ids).update(queued_at=timezone.now(), claimed_by="")
    _send(model.pk, embedding_ids)


def _send(model_id, embedding_ids):
    """Send ``embed_batch`` tasks of ``TASK_BATCH_SIZE`` rows for ``embedding_ids`` once the transaction commits.

    A broker out of reach is logged, not raised (dispatch.send): the rows are committed pending, and the sweep
    queues them again.
    """
    size = int(app_settings.TASK_BATCH_SIZE)
    for start in range(0, len(embedding_ids), size):
        dispatch.send(dispatch.EMBED_BATCH, args=(model_id, embedding_ids[start:start + size]))


def embed_pending(model_id, embedding_ids, *, claim=None):
    """Embed those of ``embedding_ids`` that are still pending; return how many became ready.

    The rows are claimed first, under ``claim`` (the task's id; a fresh one when None): a
    row claimed by another task is left to it, so two workers that take duplicate messages
    of one batch at once embed each image once. The same task delivered again (its worker
    died before acknowledging it) claims its rows again; the sweep frees the claims of rows
    it queues anew. Rows that vanished or are already ready are skipped. An image that
    cannot be read is marked failed with the reason; the others are embedded in one batch. An
    image given another file meanwhile (its old one deleted, maybe) keeps neither: it was queued again.
    """
    model = EmbeddingModel.objects.filter(pk=model_id).first()
    if model is None:
        return 0
    claim = claim or uuid.uuid4().hex
    # Claimed and counted before the work, committed at once: a worker that dies on this batch leaves a trace.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ImageEmbedding._meta.db_table} SET attempts = attempts + 1, claimed_by = %s "
            "WHERE id = ANY(%s) AND model_id = %s AND state = %s AND claimed_by IN ('', %s) RETURNING id",
            [claim, list(embedding_ids), model.pk, ImageEmbedding.State.PENDING, claim],
        )
        claimed = [pk for (pk,) in cursor.fetchall()]
    rows = list(ImageEmbedding.objects.filter(pk__in=claimed).select_related("image").order_by("pk"))
    if not rows:
        return 0
    embedder = embedder_for(model)
    loaded, failed = [], []
    for row, image in zip(rows, run_all(_read_or_refusal, [row.image for row in rows])):  # decoded side by side
        if isinstance(image, ImageRejected):
            failed.append((row, image.reason))
        else:
            loaded.append((row, image))
    for row, reason in failed:  # rare: an UPDATE each, kept to the file that was read (as _store_ready is)
        ImageEmbedding.objects.filter(
            pk=row.pk, state=ImageEmbedding.State.PENDING, image__file=row.image.file.name,
            image__sha256=row.image.sha256,
        ).update(state=ImageEmbedding.State.FAILED, error=reason, vector=None, norm=None)
    if not loaded:
        return 0
    features = embedder.embed_images([image for _, image in loaded], normalize=False)  # [n, dim]
    return _store_ready([row for row, _ in loaded], features)


def _store_ready(rows, features):
    """Store the vectors of ``rows`` (ImageEmbedding, their image loaded) still pending; return how many were stored.

    A row deleted or already ready meanwhile is left alone, and so is one whose image no longer
    has the file that was read: replaced while this batch was embedded, it was queued again, and
    the old picture's vector must not make it ready. One UPDATE from arrays: ``bulk_update``
    builds a CASE per field and row, which cost about as much as half of the forward pass of a
    batch on the demo model (bench/ingest.py measures it).
    """
    norms = np.linalg.norm(features, axis=1)  # [n]
    vectors = features / np.maximum(norms, 1e-12)[:, None]  # [n, dim]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ImageEmbedding._meta.db_table} AS e "
            "SET state = %s, error = '', vector = v.vector, norm = v.norm, updated_at = now() "
            "FROM unnest(%s::bigint[], %s::halfvec[], %s::float8[], %s::text[], %s::text[]) "
            f"AS v(id, vector, norm, file, sha256), {ProductImage._meta.db_table} AS i "
            "WHERE e.id = v.id AND e.state = %s AND i.id = e.image_id AND i.file = v.file AND i.sha256 = v.sha256",
            [ImageEmbedding.State.READY, [row.pk for row in rows], [HalfVector(v).to_text() for v in vectors],
             norms.tolist(), [row.image.file.name for row in rows], [row.image.sha256 for row in rows],
             ImageEmbedding.State.PENDING],
        )
        return cursor.rowcount


def _read_or_refusal(image):
    """The decoded image, or the ImageRejected that says why it cannot be."""
    try:
        return _read_image(image)
    except ImageRejected as exc:
        return exc


def _read_image(image):
    """Read and decode a stored product image, or raise ImageRejected with the reason.

    A file that cannot be read fails alone (the others of its batch are embedded): missing, a
    directory, not readable by the worker, or a name that leads outside the storage (a shop's
    row). A storage that cannot be reached at all (ConnectionError, TimeoutError) fails the
    task instead, which is retried: the file may well be fine.
    """
    name, storage = image.file.name, storage_of(image)
    try:
        with storage.open(name, "rb") as handle:
            return load_image(handle, **image_limits())
    except FileNotFoundError as exc:
        raise ImageRejected(f"image file is missing from storage ({name})") from exc
    except SuspiciousFileOperation as exc:
        raise ImageRejected(f"image file name leads outside its storage ({name})") from exc
    except (ConnectionError, TimeoutError):
        raise
    except OSError as exc:  # the message has the server's path; the reason says what it is without it
        raise ImageRejected(f"image file cannot be read ({name}): {exc.strerror or type(exc).__name__}") from exc


def sweep_pending(*, older_than=None):
    """Queue again the rows pending longer than ``older_than`` seconds; return how many.

    Rows that were started MAX_ATTEMPTS times without finishing are marked failed.
    """
    older_than = app_settings.SWEEP_AFTER if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=float(older_than))
    stale = ImageEmbedding.objects.filter(state=ImageEmbedding.State.PENDING).filter(
        Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True)
    )
    stale.filter(attempts__gte=MAX_ATTEMPTS).update(
        state=ImageEmbedding.State.FAILED,
        error=f"gave up after {MAX_ATTEMPTS} attempts: the worker stopped each time (crash or out of memory?)",
    )
    queued = 0
    with transaction.atomic():
        for model in EmbeddingModel.objects.filter(pk__in=stale.values("model_id")):
            ids = list(stale.filter(model=model).values_list("pk", flat=True))
            _queue(model, ids)
            queued += len(ids)
        # Images that entered without being queued (a bulk insert of the shop's, a raw UPDATE):
        # whatever way an image enters, the index follows.
        for model in active_models():
            queued += _queue_unqueued(model, created_before=cutoff)
    if queued:
        logger.info("sweep: queued %d pending embeddings again", queued)
    return queued


def queue_unclaimed():
    """Queue again every pending row that no task has claimed, whatever its age; return how many.

    For a broker that lost its messages (tasks.sweep_pending): the batch of any such row may be
    gone. A claimed row is left out: the worker that claimed it holds its batch in hand, a lost
    message or not, and freeing its claim would let a second worker embed it beside the first; a
    worker that died with the broker leaves it to ``sweep_pending`` after ``SWEEP_AFTER``. So are
    rows past ``MAX_ATTEMPTS``, which ``sweep_pending`` marks failed.
    """
    unclaimed = ImageEmbedding.objects.filter(state=ImageEmbedding.State.PENDING, claimed_by="",
                                              attempts__lt=MAX_ATTEMPTS)
    queued = 0
    with transaction.atomic():
        for model in EmbeddingModel.objects.filter(pk__in=unclaimed.values("model_id")):
            ids = list(unclaimed.filter(model=model).order_by("pk").values_list("pk", flat=True))
            _queue(model, ids)
            queued += len(ids)
    if queued:
        logger.info("sweep: queued %d unclaimed pending embeddings again after the broker lost its messages", queued)
    return queued


def _queue_unqueued(model, *, created_before):
    missing = list(ProductImage.objects.filter(in_index=True, created_at__lt=created_before)
                   .exclude(embeddings__model=model).values_list("pk", flat=True))
    if not missing:
        return 0
    ImageEmbedding.objects.bulk_create([ImageEmbedding(image_id=pk, model=model) for pk in missing],
                                       ignore_conflicts=True)
    ids = list(ImageEmbedding.objects.filter(model=model, image_id__in=missing, state=ImageEmbedding.State.PENDING,
                                             queued_at__isnull=True).values_list("pk", flat=True))
    _queue(model, ids)
    return len(ids)


def retry_failed(images):
    """Queue again the failed embeddings of ``images`` (ProductImages, their ids or a QuerySet) under the active
    models, of those in the index; return how many.

    One UPDATE ... RETURNING of the failed rows (the ids as one array parameter), and the tasks after commit.
    """
    image_ids = _image_ids(images)
    if not image_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ImageEmbedding._meta.db_table} AS e SET state = %s, error = '', attempts = 0, claimed_by = '', "
            f"queued_at = %s FROM {ProductImage._meta.db_table} AS i "
            "WHERE e.image_id = ANY(%s) AND e.state = %s AND e.model_id = ANY(%s) AND i.id = e.image_id AND i.in_index "
            "RETURNING e.model_id, e.id",
            [ImageEmbedding.State.PENDING, timezone.now(), image_ids, ImageEmbedding.State.FAILED,
             list(active_models().values_list("pk", flat=True))],
        )
        rows = cursor.fetchall()
    _send_batches(rows)
    return len(rows)


def remove_from_index(images):
    """Take ``images`` (ProductImages, their ids or a QuerySet) out of search: drop their vectors and keep them
    from being embedded again.

    Return how many vectors were dropped (rows pending or failed have none). Two statements, the ids as one array
    parameter.
    """
    image_ids = _image_ids(images)
    if not image_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {ProductImage._meta.db_table} SET in_index = false WHERE id = ANY(%s) AND in_index",
                       [image_ids])
        cursor.execute(
            f"WITH gone AS (DELETE FROM {ImageEmbedding._meta.db_table} WHERE image_id = ANY(%s) "
            "RETURNING vector IS NOT NULL AS had) SELECT count(*) FILTER (WHERE had) FROM gone",
            [image_ids],
        )
        return cursor.fetchone()[0]


def _image_ids(images):
    """The ids of ``images``: ProductImages, their ids, or a QuerySet of them (read once, as ids)."""
    if hasattr(images, "values_list"):
        return sorted(set(images.values_list("pk", flat=True)))
    return sorted({image if isinstance(image, int) else image.pk for image in images})

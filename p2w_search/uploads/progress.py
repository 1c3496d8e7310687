"""What a merchant polls: a job's rows, its images' embedding, and its first errors.

The answer is bounded whatever the job's size (the first ``IMPORT_ERRORS_SHOWN`` errors;
all of them are in the rejected-rows file), and so is its cost: the image counts are one
aggregate query while images are still embedding, and stored in the job once none is
pending, after which a poll reads one row. A list of jobs counts them all at once
(``prefetch_image_counts``): the same queries for a page of 100 jobs as for one.

An import runs in one transaction, so its rows are invisible until it commits. While it
runs, the worker reports how many rows it has checked in Django's cache
(``row_reporter``, the ``progress`` callback of ``importer.run_import``); the poll answer
reads it back as ``rows_checked``. The cache must be shared by the web and the workers
(Redis in the demo) for the count to move; with a per-process cache the rows simply show
as checked once the import ends.
"""

import functools
import json
import time

from django.core.cache import cache
from django.db.models import Count

from p2w_search import workers
from p2w_search.conf import app_settings
from p2w_search.models import EmbeddingModel, ImageEmbedding, ImportJob

__all__ = ["job_progress", "image_counts", "prefetch_image_counts", "prefetch_progress", "job_errors", "unlisted_skus",
           "row_reporter", "rows_checked", "ROWS_KEY", "ROWS_TTL"]

ROWS_KEY = "p2w:import:{}:rows"  # the cache key of job {}'s (rows checked, rows in all)
ROWS_TTL = 24 * 3600  # seconds: an import that runs longer reports again with each write


def row_reporter(job_id, *, every=0.5):
    """Return a ``progress(done, total)`` callback that writes job ``job_id``'s row count to the cache.

    It writes the first call, the last (``done == total``) and otherwise at most once every
    ``every`` seconds: a cache round trip per row would cost a 100,000-row import seconds.
    """
    key = ROWS_KEY.format(job_id)
    last = [None]

    def report(done, total):
        now = time.monotonic()
        if last[0] is not None and done < total and now - last[0] < every:
            return
        last[0] = now
        try:
            cache.set(key, (done, total), ROWS_TTL)
        except Exception:  # noqa: BLE001 - a cache outage must not fail the import it only reports on
            pass

    return report


def rows_checked(job):
    """``(checked, in_all)``: the rows of ``job`` checked so far, live from the worker's reports while it runs."""
    if job.state in ImportJob.ENDED:
        total = _rows_total(job)
        return total, total
    if job.state != ImportJob.State.RUNNING:
        return 0, 0
    try:
        reported = cache.get(ROWS_KEY.format(job.pk))
    except Exception:  # noqa: BLE001 - without the cache the count is unknown, not an error
        reported = None
    # What another version, or another app sharing the cache, wrote there is no count of this job's: unknown.
    if (not isinstance(reported, (tuple, list)) or len(reported) != 2 or not all(map(_count, reported))
            or reported[0] > reported[1]):
        return 0, 0
    return tuple(reported)


COUNTS = ("images_total", "images_embedded", "images_failed")


def image_counts(job):
    """``{"images_total", "images_embedded", "images_failed"}`` of the job's images under the serving model.

    Stored counts that are not those three numbers (a row another version wrote, or one
    edited by hand: each poll and page of the job was a 500) are counted again.
    """
    stored = _stored_counts(job)
    if stored is not None:
        return stored
    counts = getattr(job, PREFETCHED, None)
    if counts is None:
        counts = _count_images([job])[job.pk]
    if job.state in ImportJob.ENDED and counts["images_embedded"] + counts["images_failed"] == counts["images_total"]:
        ImportJob.objects.filter(pk=job.pk).update(final_counts=counts)
        job.final_counts = counts
    return counts


PREFETCHED = "_p2w_image_counts"  # the attribute prefetch_image_counts sets on a job


def prefetch_image_counts(jobs):
    """Count the images of every job of ``jobs`` (e.g. a page of a list) at once, for ``image_counts`` to read.

    Three queries however many jobs (the serving model, their images, their images' states),
    where ``image_counts`` of each job made three of its own. Jobs whose counts are stored
    cost none. Returns ``jobs`` as a list (a QuerySet is evaluated: its rows are the jobs counted).
    """
    jobs = list(jobs)
    counted = [job for job in jobs if _stored_counts(job) is None]
    if counted:
        found = _count_images(counted)
        for job in counted:
            setattr(job, PREFETCHED, found[job.pk])
    return jobs


NO_WORKER = "_p2w_no_worker"  # the attribute prefetch_progress sets on a job: how it asks whether no worker runs


def _no_bulk_worker():
    """Whether no bulk worker is alive: one indexed query."""
    return not workers.alive(app_settings.BULK_QUEUE).exists()


def prefetch_progress(jobs):
    """``prefetch_image_counts``, and whether a bulk worker is alive asked at most once for the list, not once per
    job that waits on one (``job_progress``'s ``no_worker``, which decides whether to ask). Returns ``jobs`` as a
    list."""
    jobs = prefetch_image_counts(jobs)
    asked_once = functools.cache(_no_bulk_worker)
    for job in jobs:
        setattr(job, NO_WORKER, asked_once)
    return jobs


def _stored_counts(job):
    """The job's stored counts, or None while there are none or they are not those three numbers."""
    stored = job.final_counts
    if isinstance(stored, dict) and all(_count(stored.get(key)) for key in COUNTS):
        return {key: stored[key] for key in COUNTS}
    return None


def _count_images(jobs):
    """``{job.pk: counts}`` of ``jobs``: their images in the index, and those embedded or failed under the serving
    model (one query each, grouped by job)."""
    ids = [job.pk for job in jobs]
    serving = EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).first()
    through = ImportJob.images.through
    totals = dict(through.objects.filter(importjob_id__in=ids, productimage__in_index=True)
                  .values_list("importjob_id").annotate(n=Count("id")).order_by())
    states = {}
    if serving is not None:
        for job_id, state, n in (
                ImageEmbedding.objects.filter(image__import_jobs__in=ids, image__in_index=True, model=serving)
                .values_list("image__import_jobs", "state").annotate(n=Count("id")).order_by()):
            states[job_id, state] = n
    return {pk: {"images_total": totals.get(pk, 0), "images_embedded": states.get((pk, ImageEmbedding.State.READY), 0),
                 "images_failed": states.get((pk, ImageEmbedding.State.FAILED), 0)} for pk in ids}


def _rows_total(job):
    """The job's rows in all: never fewer than it accepted and rejected ("5 of 0 rows imported", of a row edited)."""
    return max(job.rows_total, job.rows_accepted + job.rows_rejected)


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def job_errors(job):
    """The job's first errors as ``[{"row", "field", "reason"}]``, whatever its ``errors`` column holds.

    The importer writes that list; a row another version wrote, or one edited by hand, may
    hold an object, texts or errors without a key, which made the poll and the job's admin
    page a 500. An entry that is no error object becomes one whose reason is its text; a
    row that is no number is None, as is a missing field.
    """
    stored = job.errors if isinstance(job.errors, list) else []
    errors = []
    for error in stored:
        if not isinstance(error, dict):
            error = {"reason": error if isinstance(error, str) else json.dumps(error)}
        row, field, reason = error.get("row"), error.get("field"), error.get("reason")
        errors.append({
            "row": row if isinstance(row, int) and not isinstance(row, bool) else None,
            "field": field if isinstance(field, str) else None,
            "reason": reason if isinstance(reason, str) else json.dumps(reason) if reason is not None else "",
        })
    return errors


def unlisted_skus(job):
    """The first SKUs the job's full sync unlisted, as texts (a number another version stored reads as its digits)."""
    stored = job.unlisted_skus if isinstance(job.unlisted_skus, list) else []
    return [sku if isinstance(sku, str) else json.dumps(sku) for sku in stored if sku is not None]


def job_progress(job):
    """The poll answer of ``job`` (a dict; the API's JobSerializer documents its fields).

    Beside the job's own fields: ``rows_in_all`` and ``rows_checked`` (rows checked so far,
    live while the import runs), ``finished`` (the import ended and no image of it waits to
    be embedded) and ``no_worker`` (the job waits on the bulk queue and no worker process
    has reported on it within ``workers.ALIVE_SECONDS``: it will not move until one runs).
    """
    counts = image_counts(job)
    ended = job.state in ImportJob.ENDED
    rows_total = _rows_total(job)
    waiting = counts["images_total"] - counts["images_embedded"] - counts["images_failed"]
    finished = ended and waiting <= 0
    checked, in_all = rows_checked(job)
    no_worker = False
    if job.state == ImportJob.State.QUEUED or (ended and not finished):
        # Only while the job waits on a worker; asked once for a list (prefetch_progress).
        no_worker = getattr(job, NO_WORKER, _no_bulk_worker)()
    return {
        "id": job.pk, "state": job.state, "policy": job.policy, "full_sync": job.full_sync,
        "confirm_unlist": job.confirm_unlist,
        "rows_total": rows_total, "rows_accepted": job.rows_accepted, "rows_rejected": job.rows_rejected,
        "rows_in_all": in_all, "rows_checked": checked,
        "products_unlisted": job.products_unlisted, "unlisted_skus": unlisted_skus(job),
        **counts,
        "finished": finished, "no_worker": no_worker,
        "errors": job_errors(job), "errors_total": job.errors_total, "message": job.message,
        "created_at": job.created_at, "updated_at": job.updated_at, "started_at": job.started_at,
        "ended_at": job.ended_at,
        "files": {field: bool(getattr(job, field)) for field in ("manifest", "archive", "rejected_rows")},
    }


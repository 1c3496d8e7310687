"""Files that no row refers to: found by walking this app's folders, deleted by a daily task.

Django writes a FileField's file before its row, so a file can outlive the row it was
written for: an import whose worker was killed after writing a chunk's images, a save whose
transaction rolled back, an upload whose job row was never inserted. No delete was ever
asked for such a file; ``remove_orphan_files`` finds them:

- product images under ``IMAGE_FOLDER`` that no ``ProductImage`` refers to (public: a
  leftover is served). Their deletes are recorded (product_images.py), so one the storage
  refuses is retried hourly and the index page warns while it is left;
- uploads under ``UPLOAD_FOLDER`` of the private upload storage that no ``ImportJob`` refers
  to (a merchant's catalog kept past what the retention promises); a refused delete is
  logged, and the next day's walk finds the file again.

Only files older than ``ORPHAN_MIN_AGE``, and older than the start of every import still
running (its commit will refer to what it wrote), are deleted.
"""

import logging
from datetime import timedelta
from functools import partial

from django.db.models import Min, Q
from django.utils import timezone

from p2w_search import product_images
from p2w_search.files import delete_each
from p2w_search.models import IMAGE_FOLDER, UPLOAD_FOLDER, ImportJob, ProductImage
from p2w_search.uploads.storage import UPLOAD_FIELDS, upload_backend

__all__ = ["remove_orphan_files", "IMAGE_FOLDER", "UPLOAD_FOLDER", "ORPHAN_MIN_AGE"]

logger = logging.getLogger(__name__)

# How old a file that no row refers to must be: a save in progress has written its file, not its row yet.
ORPHAN_MIN_AGE = timedelta(hours=1)
BATCH = 1000


def remove_orphan_files(*, now=None):
    """Delete the files of this app's folders that no row refers to; return ``{"images": n, "uploads": m}``."""
    cutoff = (now or timezone.now()) - ORPHAN_MIN_AGE
    running = ImportJob.objects.filter(state=ImportJob.State.RUNNING).aggregate(oldest=Min("started_at"))["oldest"]
    if running is not None:
        cutoff = min(cutoff, running)
    uploads = upload_backend()
    removed = {
        "images": _sweep(ProductImage._meta.get_field("file").storage, IMAGE_FOLDER, cutoff,
                         _referenced_images, product_images.delete_files_now),
        "uploads": _sweep(uploads, UPLOAD_FOLDER, cutoff, _referenced_uploads, partial(delete_each, uploads)),
    }
    if any(removed.values()):
        logger.info("deleted files that no row referred to: %(images)d product images, %(uploads)d uploads", removed)
    return removed


def _sweep(storage, folder, cutoff, referenced, delete):
    removed, names = 0, []
    for name in _walk(storage, folder):
        names.append(name)
        if len(names) == BATCH:
            removed += _remove(storage, names, cutoff, referenced, delete)
            names = []
    return removed + _remove(storage, names, cutoff, referenced, delete)


def _remove(storage, names, cutoff, referenced, delete):
    known = referenced(names)
    return delete([name for name in names if name not in known and storage.get_modified_time(name) < cutoff])


def _walk(storage, folder):
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:  # nothing stored yet
        return
    for file in sorted(files):
        yield f"{folder}/{file}"
    for child in sorted(folders):
        yield from _walk(storage, f"{folder}/{child}")


def _referenced_images(names):
    return set(ProductImage.objects.filter(file__in=names).values_list("file", flat=True))


def _referenced_uploads(names):
    query = Q()
    for field in UPLOAD_FIELDS:
        query |= Q(**{f"{field}__in": names})
    rows = ImportJob.objects.filter(query).values_list(*UPLOAD_FIELDS)
    return {name for row in rows for name in row if name}

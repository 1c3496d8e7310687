"""Where merchants' uploaded manifests, archives and rejected-rows files are kept.

Never in the public media folder: another merchant (or anyone) could read them at a
guessable URL. They live in the storage named by ``P2W_SEARCH["UPLOAD_STORAGE"]``, an
alias of Django's ``STORAGES`` that no URL serves; the owning merchant and staff download
them through authenticated views, and ``remove_expired_uploads`` deletes them
``UPLOAD_RETENTION_DAYS`` after their job ended.
"""

import logging
from datetime import timedelta

from django.core.files.storage import InvalidStorageError, Storage, storages
from django.utils import timezone

from p2w_search.conf import P2WImproperlyConfigured, app_settings

__all__ = ["UploadStorage", "upload_storage", "upload_backend", "UPLOAD_FIELDS", "remove_expired_uploads"]

logger = logging.getLogger(__name__)

# The ImportJob fields that hold uploaded or generated files.
UPLOAD_FIELDS = ("manifest", "archive", "rejected_rows")


def upload_backend():
    """Return the storage configured for uploads, or raise P2WImproperlyConfigured naming the setting."""
    alias = app_settings.UPLOAD_STORAGE
    try:
        return storages[alias]
    except InvalidStorageError:
        raise P2WImproperlyConfigured(
            f"STORAGES has no {alias!r} storage for merchants' uploads (P2W_SEARCH['UPLOAD_STORAGE']): add one "
            "that is never served publicly, e.g. a FileSystemStorage outside MEDIA_ROOT."
        ) from None


class UploadStorage(Storage):
    """A storage that hands every call to ``upload_backend()``, looked up at call time.

    FileField resolves its storage when the model class is built; this keeps that from
    reading settings at import time, and follows ``override_settings(STORAGES=...)``.
    """

    def _open(self, name, mode="rb"):
        return upload_backend().open(name, mode)

    def _save(self, name, content):
        return upload_backend().save(name, content)

    def get_available_name(self, name, max_length=None):
        return upload_backend().get_available_name(name, max_length=max_length)

    def generate_filename(self, filename):
        return upload_backend().generate_filename(filename)

    def delete(self, name):
        return upload_backend().delete(name)

    def exists(self, name):
        return upload_backend().exists(name)

    def listdir(self, path):
        return upload_backend().listdir(path)

    def size(self, name):
        return upload_backend().size(name)

    def path(self, name):
        return upload_backend().path(name)

    def url(self, name):
        raise NotImplementedError("uploads have no public URL; download them through the authenticated views")

    def get_modified_time(self, name):
        return upload_backend().get_modified_time(name)


_upload_storage = UploadStorage()


def upload_storage():
    """The storage of ImportJob's file fields (a callable, so migrations name it instead of a path)."""
    return _upload_storage


def remove_expired_uploads(*, now=None):
    """Delete the files of jobs that ended more than ``UPLOAD_RETENTION_DAYS`` ago; return how many jobs."""
    from p2w_search.models import ImportJob

    cutoff = (now or timezone.now()) - timedelta(days=float(app_settings.UPLOAD_RETENTION_DAYS))
    jobs = ImportJob.objects.filter(ended_at__lt=cutoff, files_removed_at__isnull=True)
    removed = 0
    for job in jobs.iterator():
        for field in UPLOAD_FIELDS:
            file = getattr(job, field)
            if file:
                try:
                    file.delete(save=False)
                except OSError as exc:  # gone already, or the storage refuses: log and go on
                    logger.warning("could not delete %s of import %s: %s", field, job.pk, exc)
        ImportJob.objects.filter(pk=job.pk).update(
            manifest="", archive="", rejected_rows="", files_removed_at=timezone.now())
        removed += 1
    if removed:
        logger.info("removed the uploaded files of %d import jobs past their retention", removed)
    return removed

"""Where merchants' uploaded manifests, archives and rejected-rows files are kept.

Never in the public media folder: another merchant (or anyone) could read them at a
guessable URL. They live in the storage named by ``P2W_SEARCH["UPLOAD_STORAGE"]``, an
alias of Django's ``STORAGES`` that no URL serves; the owning merchant and staff download
them through authenticated views, and ``retention.remove_expired_uploads`` deletes them
``UPLOAD_RETENTION_DAYS`` after their job ended.
"""

import logging

from django.core.files.storage import InvalidStorageError, Storage, storages

from p2w_search.conf import P2WImproperlyConfigured, app_settings

__all__ = ["UploadStorage", "upload_storage", "upload_backend", "UPLOAD_FIELDS"]

# The ImportJob fields that hold uploaded or generated files.
UPLOAD_FIELDS = ("manifest", "archive", "rejected_rows", "listed_at_upload")

logger = logging.getLogger(__name__)


def upload_backend():
    """Return the storage configured for uploads, or raise P2WImproperlyConfigured naming the setting."""
    try:
        return storages[app_settings.UPLOAD_STORAGE]
    except InvalidStorageError:
        raise P2WImproperlyConfigured(missing_storage("where merchants' uploads are kept")) from None


def missing_storage(where):
    """What to set when STORAGES lacks the alias ``P2W_SEARCH["UPLOAD_STORAGE"]`` names, ``where`` saying what it keeps
    (the uploads, the photo search's photos): one sentence for every path that finds it missing."""
    return (f"STORAGES has no {app_settings.UPLOAD_STORAGE!r} storage (P2W_SEARCH['UPLOAD_STORAGE']), {where}: add "
            "one that is never served publicly, e.g. a FileSystemStorage outside MEDIA_ROOT, or set "
            "P2W_SEARCH['UPLOAD_STORAGE'] to the alias of one.")


class UploadStorage(Storage):
    """A storage that hands every call to ``upload_backend()``, looked up at call time.

    FileField resolves its storage when the model class is built; this keeps that from
    reading settings at import time, and follows ``override_settings(STORAGES=...)``.
    """

    def _open(self, name, mode="rb"):
        return upload_backend().open(name, mode)

    def _save(self, name, content):
        backend = upload_backend()
        try:
            return backend.save(name, content)
        except BaseException:
            # A write cut short (a full disk) leaves part of the file. ``name`` is this file's alone (upload_path
            # gives each upload a folder of its own, and it was free): what is there now is that part, which no
            # job would ever refer to.
            try:
                backend.delete(name)
            except Exception as exc:
                logger.warning("could not delete the part written of %s (the orphan sweep will): %s", name, exc)
            raise

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

"""A file storage that fails as a full disk or a read-only folder would, for tests/test_storage_faults.py.

``FaultyStorage`` is a FileSystemStorage that raises ``OSError(errno)`` on the operations in
``fail`` (``save``, ``open``, ``delete``) of the files whose name contains ``match``. A save
that fails with ENOSPC writes part of the file first, as a disk that fills up mid-write does;
other errors (EACCES, EROFS) come before anything is written, as a folder one may not write to.
``error="CLOUD"`` raises ``CloudRefused`` instead, no OSError, as a cloud storage's client does
(botocore's ClientError).

In the test process it is configured through ``STORAGES`` (``storage_settings``); worker
processes read ``P2W_TEST_STORAGE_FAULT`` (``operation[,operation]:ERRNO:match``, see
tests/fault_settings.py) for the default storage, where product images are.
"""

import errno
import os

from django.core.files import File
from django.core.files.storage import FileSystemStorage

__all__ = ["FaultyStorage", "CloudRefused", "storage_settings", "from_environment"]


class CloudRefused(Exception):
    """What a cloud storage's client raises when the bucket refuses: no OSError."""


class FaultyStorage(FileSystemStorage):
    def __init__(self, *args, fail=(), error="ENOSPC", match="", **kwargs):
        super().__init__(*args, **kwargs)
        self.fail, self.errno, self.match = set(fail), None if error == "CLOUD" else getattr(errno, error), match

    def _faulty(self, operation, name):
        return operation in self.fail and self.match in name

    def _error(self, name):
        if self.errno is None:
            return CloudRefused(f"the bucket refused {name}")
        return OSError(self.errno, os.strerror(self.errno), self.path(name))

    def _save(self, name, content):
        if self._faulty("save", name):
            if self.errno != errno.ENOSPC:
                raise self._error(name)
            content = _FillsTheDisk(content, self._error(name))
        return super()._save(name, content)

    def _open(self, name, mode="rb"):
        if self._faulty("open", name):
            raise self._error(name)
        opened = super()._open(name, mode)
        return File(_FailsToRead(opened.file, self._error(name)), opened.name) if self._faulty("read", name) else opened

    def delete(self, name):
        if self._faulty("delete", name):
            raise self._error(name)
        return super().delete(name)


class _FailsToRead:
    """An open file whose reads fail (a disk that fails under it): it opens, and its first read raises."""

    def __init__(self, file, error):
        self.file, self.error = file, error

    def read(self, *args):
        raise self.error

    def __getattr__(self, name):
        return getattr(self.file, name)


class _FillsTheDisk:
    """``content`` whose first chunk is half written before the disk is full."""

    def __init__(self, content, error):
        self.content, self.error = content, error

    def chunks(self, chunk_size=None):
        for chunk in self.content.chunks():
            yield chunk[:max(len(chunk) // 2, 1)]
            break
        raise self.error


def storage_settings(location, *, fail, error="ENOSPC", match=""):
    """A ``STORAGES`` entry of a FaultyStorage in ``location``."""
    return {"BACKEND": "tests.fault_storage.FaultyStorage",
            "OPTIONS": {"location": str(location), "fail": list(fail), "error": error, "match": match}}


def from_environment(location):
    """The ``STORAGES`` entry ``P2W_TEST_STORAGE_FAULT`` asks for, or None."""
    fault = os.environ.get("P2W_TEST_STORAGE_FAULT")
    if not fault:
        return None
    operations, error, match = fault.split(":", 2)
    return storage_settings(location, fail=operations.split(","), error=error, match=match)

"""Uploads are kept ``UPLOAD_RETENTION_DAYS`` after their job ended, then deleted (Celery beat's cleanup task).

A job whose files the storage refused to delete keeps their names and is tried again on the next run.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from p2w_search.conf import app_settings
from p2w_search.models import ImportJob
from p2w_search.uploads.storage import UPLOAD_FIELDS

__all__ = ["remove_expired_uploads"]

logger = logging.getLogger(__name__)


def remove_expired_uploads(*, now=None):
    """Delete the files of jobs that ended more than ``UPLOAD_RETENTION_DAYS`` ago; return how many jobs."""
    cutoff = (now or timezone.now()) - timedelta(days=float(app_settings.UPLOAD_RETENTION_DAYS))
    jobs = ImportJob.objects.filter(ended_at__lt=cutoff, files_removed_at__isnull=True)
    removed = 0
    for job in jobs.iterator():
        failed = False
        for field in UPLOAD_FIELDS:
            file = getattr(job, field)
            if file:
                try:
                    file.delete(save=False)
                except Exception as exc:  # the storage refuses: the job keeps its names, the next run tries again
                    logger.warning("could not delete %s of import %s (tried again later): %s", field, job.pk, exc)
                    failed = True
        if failed:
            continue
        ImportJob.objects.filter(pk=job.pk).update(
            **dict.fromkeys(UPLOAD_FIELDS, ""), files_removed_at=timezone.now())
        removed += 1
    if removed:
        logger.info("removed the uploaded files of %d import jobs past their retention", removed)
    return removed

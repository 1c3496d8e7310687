"""The index and the files follow every change of a product image, whichever way it happens.

An image added or replaced through the admin, the shell, the shop's own code or the API
is queued for embedding once its transaction commits (with the other images of that
transaction, in batches); a file that no image refers to any more (the image or its
product deleted, the file replaced) is deleted from storage once the deletion commits.
Imports write images in bulk, without save signals, and call the same functions.

The files to delete are written down (``FileDeletion``) in the transaction that lets go of
them, so a delete that fails, or a process that stops between the commit and the delete, is
tried again by the cleanup task (``retry_file_deletions``): a deleted product's photo is never
left served. A file that no row ever referred to is found by walking the folder (orphans.py).
"""

import logging
from datetime import timedelta

from django.db import DatabaseError, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver
from django.utils import timezone

from p2w_search.files import delete_each
from p2w_search.models import FileDeletion, ProductImage

__all__ = ["delete_files_on_commit", "delete_files_now", "overdue_deletions", "retry_file_deletions"]

# A deletion recorded this long ago and still pending has failed or lost its process: the
# cleanup task tries it again (younger ones are left to the commit that is deleting them).
RETRY_AFTER = timedelta(minutes=5)
RETRY_BATCH = 1000

logger = logging.getLogger(__name__)


def delete_files_on_commit(names):
    """Delete the product image files ``names`` once the transaction commits, unless an image still uses one.

    The deletions are recorded in the same transaction: a rollback forgets them with the rest.
    """
    ids = _record(names)
    if ids:
        transaction.on_commit(lambda: _delete(FileDeletion.objects.filter(pk__in=ids)))


def delete_files_now(names):
    """Delete the files ``names`` that no committed image refers to (a rolled-back import's, the orphans'),
    recorded first so that a refused delete is retried; return how many went.

    When the database cannot record them (out of reach: often why an import failed), they are
    deleted unrecorded.
    """
    try:
        ids = _record(names)
    except DatabaseError as exc:
        logger.warning("could not record %d files to delete (%s): deleting them without a record", len(names), exc)
        return delete_each(ProductImage._meta.get_field("file").storage, names)
    return _delete(FileDeletion.objects.filter(pk__in=ids))


def overdue_deletions(now=None):
    """The recorded deletions still pending ``RETRY_AFTER`` after they were recorded."""
    return FileDeletion.objects.filter(created_at__lt=(now or timezone.now()) - RETRY_AFTER)


def retry_file_deletions(*, now=None):
    """Delete the files whose recorded deletion is overdue; return how many are done."""
    done, last = 0, 0
    while batch := list(overdue_deletions(now).filter(pk__gt=last).order_by("pk")[:RETRY_BATCH]):
        done += _delete(batch)
        last = batch[-1].pk
    if done:
        logger.info("deleted %d product image files whose first delete had not happened", done)
    return done


def _record(names):
    names = sorted({name for name in names if name})
    return [row.pk for row in FileDeletion.objects.bulk_create([FileDeletion(name=name) for name in names])]


def _delete(rows):
    """Delete the files of ``rows`` (FileDeletion) that no image uses, and the rows of those done."""
    rows = list(rows)
    storage = ProductImage._meta.get_field("file").storage
    names = [row.name for row in rows]
    in_use = set(ProductImage.objects.filter(file__in=names, source_pk="").values_list("file", flat=True))
    done = []
    for row in rows:
        if row.name not in in_use:
            try:
                storage.delete(row.name)
            except Exception as exc:  # any storage's error (a full disk, an object store out of reach)
                logger.warning("could not delete the image file %s (tried again later): %s", row.name, exc)
                FileDeletion.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1,
                                                              last_error=f"{type(exc).__name__}: {exc}"[:1000])
                continue
        done.append(row.pk)
    FileDeletion.objects.filter(pk__in=done).delete()
    return len(done)


@receiver(post_init, sender=ProductImage)
def _remember_file(sender, instance, **kwargs):
    instance._p2w_saved_file = instance.file.name if instance.pk else None


@receiver(post_save, sender=ProductImage)
def _follow_save(sender, instance, created, raw=False, **kwargs):
    if raw:  # loaddata
        return
    previous, instance._p2w_saved_file = instance._p2w_saved_file, instance.file.name
    if created or previous != instance.file.name:
        from p2w_search.indexing import queue_on_commit

        queue_on_commit([instance.pk])
        if previous and previous != instance.file.name and not instance.source_pk:  # a shop's file is the shop's
            delete_files_on_commit([previous])


@receiver(post_delete, sender=ProductImage)
def _follow_delete(sender, instance, **kwargs):
    if not instance.source_pk:
        delete_files_on_commit([instance.file.name])

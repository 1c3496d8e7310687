"""The index and the files follow every change of a product image, whichever way it happens.

An image added or replaced through the admin, the shell, the shop's own code or the API
is queued for embedding once its transaction commits (with the other images of that
transaction, in batches); a file that no image refers to any more (the image or its
product deleted, the file replaced) is deleted from storage once the deletion commits.
Imports write images in bulk, without save signals, and call the same functions.
"""

import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver

from p2w_search.models import ProductImage

__all__ = ["delete_files_on_commit"]

logger = logging.getLogger(__name__)


def delete_files_on_commit(names):
    """Delete the product image files ``names`` once the transaction commits, unless an image still uses one."""
    names = [name for name in names if name]
    if names:
        transaction.on_commit(lambda: _delete_unused(names))


def _delete_unused(names):
    storage = ProductImage._meta.get_field("file").storage
    in_use = set(ProductImage.objects.filter(file__in=names, source_pk="").values_list("file", flat=True))
    for name in set(names) - in_use:
        try:
            storage.delete(name)
        except OSError as exc:  # the file stays in place: logged for an operator, not retried
            logger.warning("could not delete the image file %s: %s", name, exc)


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

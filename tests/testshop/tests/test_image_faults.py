"""One bad row of the shop's image model fails alone: the shop's save, the sync, the sweep and the embedding go on.

A bad row is one whose file name leads outside the shop's storage (``../x.png``, an absolute
path: legacy rows, careless shop code), whose order does not fit the mirror's position, or
that the mirror cannot hold at all. Each is logged or recorded on its embedding with the
reason; the shop's other images are mirrored and embedded all the same.
"""

import hashlib
import io
import logging
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from p2w_search import shop_images, tasks
from p2w_search.models import ImageEmbedding, ProductImage
from tests.testshop.models import ShopImage
from tests.testshop.tests.shop import add_image, embed_pending, png

CYAN = (0, 200, 200)
OUTSIDE = "image file name leads outside its storage"


@pytest.fixture
def follow(django_capture_on_commit_callbacks):
    """Run the on-commit callbacks of what is done inside, as a commit would (the signals act on commit)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def bulk_rows(catalog):
    """A shop image whose name leaves the storage, then a good one: bulk-created, so no signal saw them."""
    storage = ShopImage._meta.get_field("image").storage
    name = storage.save("testshop/images/bulk-cyan.png", ContentFile(png(CYAN)))
    stool = catalog["orange stool"]
    return ShopImage.objects.bulk_create([ShopImage(product=stool, image="../../outside.png", position=1),
                                          ShopImage(product=stool, image=name, position=2)])


def mirror_of(shop_image):
    return ProductImage.objects.get(source_pk=str(shop_image.pk))


def state_of(shop_image):
    row = ImageEmbedding.objects.get(image=mirror_of(shop_image))
    return row.state, row.error


def sync(*options):
    out = io.StringIO()
    call_command("p2w_index", "sync", *options, stdout=out)
    return out.getvalue().strip()


def synced(created, changed, unchanged):
    return (f"{created} created, {changed} changed, 0 deleted, {unchanged} unchanged "
            "(new and changed images are queued for embedding)")


def test_a_saved_image_named_outside_the_storage_fails_alone_with_the_reason(catalog, follow, caplog):
    stool = catalog["orange stool"]
    with follow():  # the shop's save and its on-commit work raise nothing
        good = add_image(stool, CYAN, position=1)
        outside = ShopImage.objects.create(product=stool, image="../outside.png", position=2)
        absolute = ShopImage.objects.create(product=stool, image="/etc/passwd", position=3)

    for shop_image in (outside, absolute):
        mirror = mirror_of(shop_image)
        assert (mirror.file.name, mirror.sha256, mirror.position) == (shop_image.image.name, "", shop_image.position)
    assert f"image {outside.pk} of testshop.ShopImage: cannot read ../outside.png" in caplog.text
    assert embed_pending() == 1  # in one batch with the good one
    assert state_of(good) == (ImageEmbedding.State.READY, "")
    assert state_of(outside) == (ImageEmbedding.State.FAILED, f"{OUTSIDE} (../outside.png)")
    assert state_of(absolute) == (ImageEmbedding.State.FAILED, f"{OUTSIDE} (/etc/passwd)")
    with follow():
        assert sync("--content") == synced(0, 0, 11)  # its file is not read again: no error, nothing changed


def test_sync_mirrors_the_images_after_one_named_outside_the_storage(catalog, follow, bulk_rows):
    bad, good = bulk_rows
    with follow():
        assert sync() == synced(2, 0, 8)

    assert (mirror_of(bad).file.name, mirror_of(bad).sha256) == ("../../outside.png", "")
    assert mirror_of(good).sha256 == hashlib.sha256(png(CYAN)).hexdigest()
    assert embed_pending() == 1
    assert state_of(good) == (ImageEmbedding.State.READY, "")
    assert state_of(bad) == (ImageEmbedding.State.FAILED, f"{OUTSIDE} (../../outside.png)")


def test_the_sweep_goes_on_past_a_bad_shop_image(catalog, bulk_rows, django_capture_on_commit_callbacks):
    bad, good = bulk_rows
    red = mirror_of(catalog["red lamp"].images.get())
    ImageEmbedding.objects.filter(image=red).update(state=ImageEmbedding.State.PENDING,
                                                    queued_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks():  # what it sends is not sent
        assert tasks.sweep_pending.run() == 1  # the stale row is queued again

    assert mirror_of(bad).sha256 == "" and mirror_of(good).sha256 == hashlib.sha256(png(CYAN)).hexdigest()
    assert ImageEmbedding.objects.get(image=red).queued_at > timezone.now() - timedelta(minutes=1)


def test_the_sweep_goes_on_when_the_sync_fails(catalog, monkeypatch, caplog, django_capture_on_commit_callbacks):
    def broken(**options):
        raise RuntimeError("the shop's image table is broken")

    monkeypatch.setattr(shop_images, "sync", broken)
    red = mirror_of(catalog["red lamp"].images.get())
    ImageEmbedding.objects.filter(image=red).update(state=ImageEmbedding.State.PENDING,
                                                    queued_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks():
        assert tasks.sweep_pending.run() == 1

    [record] = [r for r in caplog.records if r.name == "p2w_search.sweeping" and r.levelno == logging.ERROR]
    assert record.getMessage() == "the sync of the shop's images failed; the sweep goes on without it"
    assert str(record.exc_info[1]) == "the shop's image table is broken"


def test_an_order_past_the_mirrors_position_is_kept_as_near_as_it_fits(catalog, follow):
    table = ShopImage._meta.db_table
    with connection.cursor() as cursor:  # as django-oscar's display_order (PositiveIntegerField), or any integer
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN position TYPE integer")
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_position_check")
    red, blue = catalog["red lamp"].images.get(), catalog["blue lamp"].images.get()
    ShopImage.objects.filter(pk=red.pk).update(position=40000)  # no signal: the sync finds them
    ShopImage.objects.filter(pk=blue.pk).update(position=-1)

    with follow():
        assert sync() == synced(0, 1, 7)  # blue's -1 is 0, as its mirror's position was
    assert (mirror_of(red).position, mirror_of(blue).position) == (32767, 0)
    assert state_of(red) == state_of(blue) == (ImageEmbedding.State.READY, "")  # the order alone: no new vector
    with follow():
        assert sync() == synced(0, 0, 8)  # the clamped position is the mirror's: no change each sync

    stool = catalog["orange stool"]
    with follow():  # through the save signal
        first = add_image(stool, CYAN, position=2**31 - 1)
        second = add_image(stool, (230, 0, 230), position=-(2**31))
    assert (mirror_of(first).position, mirror_of(second).position) == (32767, 0)
    assert embed_pending() == 2


def test_a_long_file_name_is_mirrored_and_embedded(catalog, follow):
    table = ShopImage._meta.db_table
    with connection.cursor() as cursor:  # wider than Django's default of 100, as a shop's field may be
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN image TYPE varchar(1100)")
    storage = ShopImage._meta.get_field("image").storage
    name = storage.save(f"testshop/images/{'d' * 200}/{'d' * 200}/{'e' * 200}.png", ContentFile(png(CYAN)))
    assert len(name) > 600
    with follow():
        saved = ShopImage.objects.create(product=catalog["orange stool"], image=name, position=1)
    assert mirror_of(saved).file.name == name
    assert embed_pending() == 1 and state_of(saved) == (ImageEmbedding.State.READY, "")


def test_an_image_the_mirror_cannot_hold_is_logged_and_the_others_go_on(catalog, follow, caplog):
    table = ShopImage._meta.db_table
    with connection.cursor() as cursor:  # a shop's file field may be longer than the mirror's (1024; W012 says so)
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN image TYPE varchar(1100)")
    stool = catalog["orange stool"]
    long_name = f"testshop/images/{'d' * 200}/{'d' * 200}/{'d' * 200}/{'d' * 200}/{'e' * 230}.png"  # 1054
    with follow():  # the shop's save answers all the same
        saved = ShopImage.objects.create(product=stool, image=long_name, position=1)
    assert not ProductImage.objects.filter(source_pk=str(saved.pk)).exists()
    assert f"image {saved.pk} of testshop.ShopImage: cannot mirror it; the next sync tries again" in caplog.text
    caplog.clear()

    storage = ShopImage._meta.get_field("image").storage
    [good] = ShopImage.objects.bulk_create([ShopImage(
        product=stool, image=storage.save("testshop/images/after.png", ContentFile(png(CYAN))), position=2)])
    with follow():
        counts = shop_images.sync()
    assert counts == {"created": 1, "changed": 0, "deleted": 0, "unchanged": 8, "failed": 1}
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == f"image {saved.pk} of testshop.ShopImage: cannot mirror it; the next sync tries again"
    assert "value too long for type character varying(1024)" in str(record.exc_info[1])
    assert not ProductImage.objects.filter(source_pk=str(saved.pk)).exists()
    assert embed_pending() == 1 and state_of(good) == (ImageEmbedding.State.READY, "")
    assert sync() == ("0 created, 0 changed, 0 deleted, 9 unchanged, 1 failed (the log says why; the next sync "
                      "tries again) (new and changed images are queued for embedding)")

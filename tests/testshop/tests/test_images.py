"""The index follows the shop's own image model (``P2W_SEARCH["IMAGE_MODEL"]``), whichever way an image changes.

Through the save and delete signals (the shop's code, its admin) and, for what no signal
sees (``bulk_create``, ``update``, a raw DELETE), through ``manage.py p2w_index sync``.
Vectors are checked against the embedder's own vector of the file the shop now has.
"""

import hashlib
import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection

from p2w_search.conf import image_limits
from p2w_search.embedders import get_embedder
from p2w_search.imaging import load_image
from p2w_search.models import ImageEmbedding, ProductImage
from tests.testshop.models import ShopImage
from tests.testshop.tests.shop import add_image, embed_pending, png

CYAN, MAGENTA = (0, 200, 200), (230, 0, 230)


@pytest.fixture
def follow(django_capture_on_commit_callbacks):
    """Run the on-commit callbacks of what is done inside, as a commit would (the signals act on commit)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def mirror_of(shop_image):
    return ProductImage.objects.get(source_pk=str(shop_image.pk))


def vector_of(image):
    row = ImageEmbedding.objects.get(image=image)
    assert row.state == ImageEmbedding.State.READY, row.state
    return np.asarray(row.vector, dtype=np.float32)


def shops_vector(shop_image):
    """The embedder's vector of the file the shop's image has now."""
    with shop_image.image.open("rb") as handle:
        return get_embedder().embed_images([load_image(handle.read(), **image_limits())])[0]


def best(client, rgb):
    response = client.post("/api/search/image/", {"image": _upload(png(rgb))}, format="multipart")
    assert response.status_code == 200, response.content
    first = response.json()["results"][0]
    return first["product"]["id"], first["score"]


def _upload(data):
    handle = io.BytesIO(data)
    handle.name = "query.png"
    return handle


def sync(*options):
    out = io.StringIO()
    call_command("p2w_index", "sync", *options, stdout=out)
    return out.getvalue().strip()


def test_every_shop_image_has_one_mirror_with_the_shops_file(catalog):
    for shop_image in ShopImage.objects.all():
        mirror = mirror_of(shop_image)
        assert (mirror.product_id, mirror.file.name, mirror.position) == (
            shop_image.product_id, shop_image.image.name, shop_image.position)
        with shop_image.image.open("rb") as handle:
            assert mirror.sha256 == hashlib.sha256(handle.read()).hexdigest()
        assert np.dot(vector_of(mirror), shops_vector(shop_image)) > 0.999
    assert ProductImage.objects.count() == ShopImage.objects.count() == 8


def test_an_added_image_is_mirrored_embedded_and_found(client, catalog, follow):
    stool = catalog["orange stool"]
    with follow():
        added = add_image(stool, CYAN, position=1)
    assert ImageEmbedding.objects.get(image=mirror_of(added)).state == ImageEmbedding.State.PENDING
    assert embed_pending() == 1

    assert np.dot(vector_of(mirror_of(added)), shops_vector(added)) > 0.999
    found, score = best(client, CYAN)
    assert found == str(stool.pk) and score == pytest.approx(1.0, abs=0.01)


def test_a_replaced_file_is_embedded_again_in_the_same_mirror(client, catalog, follow):
    lamp = catalog["red lamp"]
    shop_image = lamp.images.get()
    before = mirror_of(shop_image)
    with follow():
        shop_image.image = ContentFile(png(MAGENTA), name="red-lamp-now-magenta.png")
        shop_image.save()

    mirror = mirror_of(shop_image)
    assert mirror.pk == before.pk and mirror.file.name == shop_image.image.name != before.file.name
    assert mirror.sha256 == hashlib.sha256(png(MAGENTA)).hexdigest()
    assert ImageEmbedding.objects.get(image=mirror).state == ImageEmbedding.State.PENDING
    embed_pending()
    assert np.dot(vector_of(mirror), shops_vector(shop_image)) > 0.999
    assert best(client, MAGENTA)[0] == str(lamp.pk)
    assert shop_image.image.storage.exists(before.file.name)  # the shop's old file is the shop's to delete


def test_a_new_position_changes_the_mirror_and_embeds_nothing(catalog, follow):
    shop_image = catalog["blue lamp"].images.get()
    with follow():
        shop_image.position = 3
        shop_image.save()
    assert mirror_of(shop_image).position == 3
    assert ImageEmbedding.objects.get(image=mirror_of(shop_image)).state == ImageEmbedding.State.READY


def test_a_deleted_image_leaves_the_index(client, catalog, follow):
    lamp = catalog["blue lamp"]
    shop_image = lamp.images.get()
    mirror = mirror_of(shop_image)
    assert best(client, (20, 40, 220))[0] == str(lamp.pk)

    with follow():
        shop_image.delete()

    assert not ProductImage.objects.filter(pk=mirror.pk).exists()
    assert not ImageEmbedding.objects.filter(image_id=mirror.pk).exists()
    assert str(lamp.pk) not in [row["product"]["id"] for row in client.get(
        "/api/search/text/", {"q": "blue lamp", "k": 50}).json()["results"]]
    assert shop_image.image.storage.exists(shop_image.image.name)  # never deleted by the app


def test_a_deleted_product_leaves_the_index(client, catalog, follow):
    rug = catalog["white rug"]
    mirror = mirror_of(rug.images.get())
    with follow():
        rug.delete()
    assert not ProductImage.objects.filter(pk=mirror.pk).exists()
    assert not ImageEmbedding.objects.filter(image_id=mirror.pk).exists()
    results = client.get("/api/search/text/", {"q": "white rug", "k": 50}).json()["results"]
    assert len(results) == 6 and str(rug.pk) not in [row["product"]["id"] for row in results]


def test_sync_reconciles_what_no_signal_saw(client, catalog, follow):
    """bulk_create and update send no signal, a raw DELETE neither; sync finds each of them."""
    stool, lamp, cushion = catalog["orange stool"], catalog["red lamp"], catalog["yellow cushion"]
    storage = ShopImage._meta.get_field("image").storage
    name = storage.save("testshop/images/bulk-cyan.png", ContentFile(png(CYAN)))
    [created] = ShopImage.objects.bulk_create([ShopImage(product=stool, image=name, position=1)])
    magenta = storage.save("testshop/images/bulk-magenta.png", ContentFile(png(MAGENTA)))
    ShopImage.objects.filter(product=lamp).update(image=magenta)
    moved = cushion.images.get()
    ShopImage.objects.filter(pk=moved.pk).update(product=stool, position=2)
    gone = catalog["black planter"].images.get()
    gone_mirror = mirror_of(gone)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ShopImage._meta.db_table} WHERE id = %s", [gone.pk])
    assert not ProductImage.objects.filter(source_pk=str(created.pk)).exists()  # no signal saw any of it

    with follow():
        report = sync()
    assert report == "1 created, 2 changed, 1 deleted, 5 unchanged (new and changed images are queued for embedding)"

    assert mirror_of(created).file.name == name
    assert mirror_of(lamp.images.get()).file.name == magenta
    assert (mirror_of(moved).product_id, mirror_of(moved).position) == (stool.pk, 2)
    assert not ProductImage.objects.filter(pk=gone_mirror.pk).exists()
    assert embed_pending() == 2  # the new image and the new file; the moved one keeps its vector
    assert best(client, CYAN)[0] == str(stool.pk)
    assert best(client, (240, 220, 20))[0] == str(stool.pk)  # the yellow image is the stool's now
    assert best(client, MAGENTA)[0] == str(lamp.pk)
    assert sync() == "0 created, 0 changed, 0 deleted, 8 unchanged (new and changed images are queued for embedding)"


def test_a_file_rewritten_under_the_same_name_is_embedded_again(catalog, follow):
    with follow():
        shop_image = add_image(catalog["orange stool"], CYAN, position=1)
    assert embed_pending() == 1 and mirror_of(shop_image).sha256 == hashlib.sha256(png(CYAN)).hexdigest()
    storage, name = shop_image.image.storage, shop_image.image.name
    storage.delete(name)
    assert storage.save(name, ContentFile(png(MAGENTA))) == name
    with follow():
        shop_image.save()  # e.g. the shop's admin saved the image again after the upload overwrote it
        sync()

    assert mirror_of(shop_image).sha256 == hashlib.sha256(png(MAGENTA)).hexdigest()
    assert embed_pending() == 1 and np.allclose(vector_of(mirror_of(shop_image)), shops_vector(shop_image), atol=1e-3)


def test_sync_with_content_finds_a_file_rewritten_without_a_save(catalog, follow):
    with follow():
        shop_image = add_image(catalog["orange stool"], CYAN, position=1)
    assert embed_pending() == 1
    storage, name = shop_image.image.storage, shop_image.image.name
    storage.delete(name)
    assert storage.save(name, ContentFile(png(MAGENTA))) == name  # no save of the shop's row: no signal

    with follow():
        assert sync() == "0 created, 0 changed, 0 deleted, 9 unchanged (new and changed images are queued for embedding)"
    assert mirror_of(shop_image).sha256 == hashlib.sha256(png(CYAN)).hexdigest()  # names alone: not seen
    with follow():
        assert sync("--content") == ("0 created, 1 changed, 0 deleted, 8 unchanged (new and changed images are "
                                     "queued for embedding)")
    assert mirror_of(shop_image).sha256 == hashlib.sha256(png(MAGENTA)).hexdigest()
    assert embed_pending() == 1 and np.allclose(vector_of(mirror_of(shop_image)), shops_vector(shop_image), atol=1e-3)

"""Model registration and switching, the sweep, and guarding against changed weights."""

import os
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import FileSystemStorage
from django.utils import timezone

from p2w_search import index, indexing
from p2w_search.conf import P2WImproperlyConfigured
from p2w_search.models import ImageEmbedding, ProductImage
from tests.factories import ProductImageFactory, png

pytestmark = pytest.mark.django_db


def embed_all(model):
    ids = list(model.embeddings.filter(state="pending").values_list("pk", flat=True))
    return indexing.embed_pending(model.pk, ids)


@pytest.fixture
def catalog(media):
    return [ProductImageFactory(data=png(colour)) for colour in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]


def test_first_model_serves_and_later_ones_build_beside_it(catalog):
    first = indexing.register_model()
    indexing.queue_missing(first)
    assert embed_all(first) == 3
    second = indexing.register_model("next")

    assert (first.state, second.state) == ("serving", "building")
    assert second.dimensions == 48 and first.dimensions == 32


def test_a_model_none_of_whose_images_could_be_embedded_is_not_switched_to(catalog, admin_client):
    """It was complete (nothing pending) and switched to: every search then found nothing."""
    old = indexing.register_model()
    indexing.queue_missing(old)
    embed_all(old)
    new = indexing.register_model("next")
    indexing.queue_missing(new)
    ImageEmbedding.objects.filter(model=new).update(state=ImageEmbedding.State.FAILED, error="cannot be read")

    with pytest.raises(indexing.IncompleteModel, match=f"{new.key} has no image embedded: all 3 failed, so every "
                                                       "search would find nothing"):
        indexing.switch_serving(new)
    assert index.serving_model() == old
    page = admin_client.get("/admin/p2w_search/embeddingmodel/index/").content.decode()
    assert 'disabled title="No image could be embedded">Serve searches with it' in page
    assert indexing.switch_serving(new, force=True) == new  # the staff member's choice, said out loud


def test_model_switch_never_mixes_vectors(catalog, django_capture_on_commit_callbacks):
    old = indexing.register_model()
    indexing.queue_missing(old)
    embed_all(old)
    new = indexing.register_model("next")
    assert indexing.queue_missing(new) == 3

    with pytest.raises(indexing.IncompleteModel, match="3 images pending"):
        indexing.switch_serving(new)
    assert index.serving_model() == old  # the old model keeps serving while the new one builds
    query = [1.0] + [0.0] * 31
    assert {h.image_id for h in index.nearest_products(old, query, k=10)} == {image.pk for image in catalog}

    embed_all(new)
    indexing.switch_serving(new)
    old.refresh_from_db()
    assert (index.serving_model(), old.state) == (new, "retired")
    served = index.nearest_embeddings(new, [1.0] + [0.0] * 47)
    assert {row.model_id for row in served} == {new.pk} and served.count() == 3
    with pytest.raises(ValueError, match="query has 32 dimensions"):
        index.nearest_embeddings(new, query)  # a vector of the old model is refused, not compared


def test_each_model_gets_its_own_partial_hnsw_index(catalog):
    from django.db import connection

    models = [indexing.register_model(), indexing.register_model("next")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'p2w_embedding_hnsw_%%'")
        indexes = dict(cursor.fetchall())
    for model in models:
        definition = indexes[index.hnsw_index_name(model)]
        assert f"halfvec({model.dimensions})" in definition and "halfvec_cosine_ops" in definition
        assert f"WHERE (model_id = {model.pk})" in definition


def test_changed_weights_under_an_alias_are_refused(catalog, settings):
    model = indexing.register_model()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "EMBEDDERS": {
        **settings.P2W_SEARCH["EMBEDDERS"], "default": settings.P2W_SEARCH["EMBEDDERS"]["next"]}}
    with pytest.raises(P2WImproperlyConfigured, match="now loads p2w-test-tiny48/tiny48-seed1.pt"):
        indexing.embedder_for(model)


def test_sweep_requeues_stale_rows_and_gives_up_on_poison(catalog, django_capture_on_commit_callbacks):
    model = indexing.register_model()
    indexing.queue_missing(model)
    rows = list(model.embeddings.order_by("pk"))
    long_ago = timezone.now() - timedelta(hours=1)
    ImageEmbedding.objects.filter(pk=rows[0].pk).update(queued_at=long_ago)
    ImageEmbedding.objects.filter(pk=rows[1].pk).update(queued_at=long_ago, attempts=indexing.MAX_ATTEMPTS)

    with django_capture_on_commit_callbacks() as callbacks:
        assert indexing.sweep_pending(older_than=60) == 1

    assert len(callbacks) == 1  # one embed_batch task, sent after commit
    poison = ImageEmbedding.objects.get(pk=rows[1].pk)
    assert poison.state == "failed" and poison.error.startswith(f"gave up after {indexing.MAX_ATTEMPTS} attempts")
    assert ImageEmbedding.objects.get(pk=rows[0].pk).queued_at > long_ago
    assert ImageEmbedding.objects.get(pk=rows[2].pk).state == "pending"  # recent: left to its task


def test_a_second_start_leaves_the_batches_in_flight_to_their_workers(catalog, django_capture_on_commit_callbacks):
    """Start pressed twice (or p2w_index embed beside a worker's start): only what no task holds is sent again."""
    model = indexing.register_model()
    with django_capture_on_commit_callbacks(execute=False) as first:
        assert indexing.queue_missing(model) == 3
    rows = list(model.embeddings.order_by("pk"))
    ImageEmbedding.objects.filter(pk=rows[0].pk).update(claimed_by="task-1", attempts=1)  # a worker embeds it
    lost = timezone.now() - timedelta(hours=1)
    ImageEmbedding.objects.filter(pk=rows[1].pk).update(queued_at=lost)  # its batch went nowhere, long ago
    ImageEmbedding.objects.filter(pk=rows[2].pk).update(queued_at=None)  # never queued (a raw insert)

    with django_capture_on_commit_callbacks(execute=False) as second:
        assert indexing.queue_missing(model) == 2

    assert len(first) == 1 and len(second) == 1  # one embed_batch each
    assert ImageEmbedding.objects.get(pk=rows[0].pk).claimed_by == "task-1"  # its worker's claim stands
    assert set(ImageEmbedding.objects.filter(pk__in=[rows[1].pk, rows[2].pk]).values_list("claimed_by", flat=True)) \
        == {""}
    assert ImageEmbedding.objects.get(pk=rows[1].pk).queued_at > lost


def test_rows_already_ready_are_not_embedded_again(catalog):
    model = indexing.register_model()
    indexing.queue_missing(model)
    assert embed_all(model) == 3
    ids = list(model.embeddings.values_list("pk", flat=True))
    before = {row.pk: (row.attempts, row.updated_at) for row in model.embeddings.all()}

    assert indexing.embed_pending(model.pk, ids) == 0  # a redelivered task

    assert {row.pk: (row.attempts, row.updated_at) for row in model.embeddings.all()} == before


def test_a_vanished_image_or_model_is_tolerated(catalog):
    model = indexing.register_model()
    indexing.queue_missing(model)
    ids = list(model.embeddings.values_list("pk", flat=True))
    catalog[0].delete()
    assert indexing.embed_pending(model.pk, ids) == 2
    assert indexing.embed_pending(987654, ids) == 0


def test_a_missing_file_is_marked_failed_with_the_reason(catalog):
    model = indexing.register_model()
    indexing.queue_missing(model)
    catalog[1].file.storage.delete(catalog[1].file.name)
    embed_all(model)
    row = ImageEmbedding.objects.get(image=catalog[1])
    assert row.state == "failed" and row.error.startswith("image file is missing from storage")
    assert np.asarray(ImageEmbedding.objects.get(image=catalog[0]).vector).shape == (32,)


def test_an_unreadable_file_fails_alone_and_the_batch_is_embedded(catalog, monkeypatch):
    """A directory, a file the worker may not read, a name outside the storage: each fails with its reason."""
    model = indexing.register_model()
    locked = ProductImageFactory(data=png((250, 250, 0)))
    indexing.queue_missing(model)
    storage = catalog[0].file.storage
    os.makedirs(storage.path("p2w/images/a-folder.png"))
    ProductImage.objects.filter(pk=catalog[0].pk).update(file="p2w/images/a-folder.png")
    ProductImage.objects.filter(pk=catalog[1].pk).update(file="../outside.png")
    opened = FileSystemStorage._open

    def refuse_locked(self, name, mode="rb"):  # the tests run as root, whom chmod does not stop
        if name == locked.file.name:
            raise PermissionError(13, "Permission denied", self.path(name))
        return opened(self, name, mode)

    monkeypatch.setattr(FileSystemStorage, "_open", refuse_locked)

    assert embed_all(model) == 1  # in one call, as one task's batch
    assert {row.image_id: (row.state, row.error) for row in model.embeddings.all()} == {
        catalog[0].pk: ("failed", "image file cannot be read (p2w/images/a-folder.png): Is a directory"),
        catalog[1].pk: ("failed", "image file name leads outside its storage (../outside.png)"),
        catalog[2].pk: ("ready", ""),
        locked.pk: ("failed", f"image file cannot be read ({locked.file.name}): Permission denied"),
    }
    assert np.asarray(ImageEmbedding.objects.get(image=catalog[2]).vector).shape == (32,)

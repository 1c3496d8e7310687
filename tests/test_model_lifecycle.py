"""A retired model registered again: it builds beside the serving one and can serve again, with fresh vectors."""

import numpy as np
import pytest
from django.core.files.base import ContentFile

from p2w_search import index, indexing
from p2w_search.models import EmbeddingModel
from tests.factories import ProductImageFactory, png

pytestmark = pytest.mark.django_db

COLOURS = ((250, 0, 0), (0, 250, 0), (0, 0, 250))


def embed_all(model):
    ids = list(model.embeddings.filter(state="pending").values_list("pk", flat=True))
    return indexing.embed_pending(model.pk, ids)


@pytest.fixture
def retired(media):
    """Three images; the default model embedded them, then 'next' took over and the default was retired."""
    images = [ProductImageFactory(data=png(colour)) for colour in COLOURS]
    old = indexing.register_model()
    indexing.queue_missing(old)
    embed_all(old)
    new = indexing.register_model("next")
    indexing.queue_missing(new)
    embed_all(new)
    indexing.switch_serving(new)
    old.refresh_from_db()
    assert old.state == "retired"
    return images, old, new


def test_a_retired_model_registered_again_builds_beside_the_serving_one_and_can_serve_again(retired):
    images, old, new = retired
    kept = dict(old.embeddings.values_list("image_id", "updated_at"))
    newcomer = ProductImageFactory(data=png((120, 120, 0)))  # added while the old model was retired
    indexing.queue_images([newcomer])
    assert not old.embeddings.filter(image=newcomer).exists()  # a retired model embeds nothing

    again = indexing.register_model("default")

    assert (again.pk, again.state) == (old.pk, "building")  # the same row, not a second one
    assert EmbeddingModel.objects.count() == 2
    assert index.serving_model() == new  # registering never takes searches away from the serving model
    with pytest.raises(indexing.IncompleteModel, match="0 images pending and 1 not queued"):
        indexing.switch_serving(again)

    assert indexing.queue_missing(again) == 1  # only the newcomer: the vectors it kept are reused
    assert embed_all(again) == 1
    assert dict(again.embeddings.exclude(image=newcomer).values_list("image_id", "updated_at")) == kept

    indexing.switch_serving(again)
    new.refresh_from_db()
    assert (index.serving_model(), new.state) == (again, "retired")
    hits = index.nearest_products(again, [1.0] + [0.0] * 31, k=10)
    assert {hit.image_id for hit in hits} == {image.pk for image in images} | {newcomer.pk}


def test_an_image_changed_while_its_model_was_retired_is_embedded_again(retired):
    images, old, new = retired
    changed = images[0]
    stale = np.asarray(old.embeddings.get(image=changed).vector, dtype=np.float32)
    changed.file.save("repainted.png", ContentFile(png((250, 250, 250))), save=False)
    changed.save()
    indexing.queue_images([changed])  # the road every changed image takes (imports, admin "embed again")

    again = indexing.register_model("default")
    indexing.queue_missing(again)
    embed_all(again)

    fresh = np.asarray(again.embeddings.get(image=changed).vector, dtype=np.float32)
    assert not np.allclose(fresh, stale, atol=1e-3), "the re-registered model still holds the old picture's vector"

"""Real Celery worker processes on the test shop's settings: its own images embedded, its queries encoded.

The workers run tests/workers.py's ``celery -A shop_demo worker`` (a Celery app configured
from the Django settings it is given) with ``DJANGO_SETTINGS_MODULE`` pointing at the test
shop, on this session's queues and test database.
"""

import numpy as np
import pytest

from p2w_search.conf import image_limits
from p2w_search.embedders import get_embedder
from p2w_search.imaging import load_image
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from tests.conftest import wait_for
from tests.testshop.models import ShopImage
from tests.testshop.tests import shop

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_workers_embed_the_shops_images_and_encode_its_queries(start_worker, media, settings, empty_queues):
    env = {"DJANGO_SETTINGS_MODULE": "tests.testshop.settings", "P2W_MEDIA_ROOT": str(media)}
    shop.clear()  # the catalog the other tests shared
    start_worker(env=env)  # one process on both queues: the bulk one and the query one
    assert not EmbeddingModel.objects.exists()

    catalog = shop.build(register=False)  # the shop's first day: a worker registers the model

    def states():
        return sorted(ImageEmbedding.objects.values_list("state", flat=True))

    wait_for(lambda: states() == ["ready"] * 8, timeout=90, message="the shop's 8 images embedded by the worker")
    assert EmbeddingModel.objects.get().state == EmbeddingModel.State.SERVING
    for shop_image in ShopImage.objects.all():
        row = ImageEmbedding.objects.get(image=ProductImage.objects.get(source_pk=str(shop_image.pk)))
        with shop_image.image.open("rb") as handle:
            local = get_embedder().embed_images([load_image(handle.read(), **image_limits())])[0]
        assert np.dot(np.asarray(row.vector, dtype=np.float32), local) > 0.999  # the worker's vector, via halfvec

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker"}
    from rest_framework.test import APIClient

    blue = catalog["blue lamp"]
    response = APIClient().post("/api/search/composed/?k=3", {"product": str(blue.pk), "text": "in red"},
                                format="json")
    assert response.status_code == 200, response.content
    assert "queue" in response["Server-Timing"]  # encoded on the query worker, not here
    found = [row["product"]["id"] for row in response.json()["results"]]
    assert len(found) == 3 and str(blue.pk) not in found

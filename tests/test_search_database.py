"""Searches read the database P2W_SEARCH["SEARCH_DATABASE"] names (a streaming replica in production); nothing else does."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.models import ImageEmbedding
from tests.factories import ProductFactory, ProductImageFactory, png

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])  # committed: two connections


@pytest.fixture
def shop(media):
    products = [ProductImageFactory(product=ProductFactory(), data=png(colour)).product
                for colour in ((220, 20, 20), (20, 200, 40), (20, 40, 220))]
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return products


@pytest.mark.parametrize(("method", "path", "data"), [
    ("get", "/api/search/text/", {"q": "red"}),
    ("get", "/api/search/similar/", {"product": "FIRST"}),
    ("post", "/api/search/composed/", {"product": "FIRST", "text": "in blue"}),
])
def test_every_search_reads_the_search_database_only(shop, settings, method, path, data):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_DATABASE": "replica"}
    data = {key: shop[0].pk if value == "FIRST" else value for key, value in data.items()}
    with CaptureQueriesContext(connections["default"]) as primary, \
            CaptureQueriesContext(connections["replica"]) as replica:
        response = getattr(APIClient(), method)(path, data, format="json" if method == "post" else None)
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) >= 2
    assert len(replica) >= 3
    # The query encoding (in-process here, on a worker in production) reads the primary: the model and
    # the reference's stored features; the ranking, the filters and the results come from the replica.
    assert all("p2w_search_embeddingmodel" in q["sql"] or "p2w_search_imageembedding" in q["sql"] for q in primary), \
        [q["sql"][:120] for q in primary]
    assert not any("catalog_product" in q["sql"] for q in primary)

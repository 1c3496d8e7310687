"""Searches at the edges: the queue out of reach, references not embedded yet, and the API's docs page."""

import time

import pytest
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.models import ImageEmbedding
from tests.factories import ProductFactory, ProductImageFactory, png
from tests.faults import celery_broker


@pytest.fixture
def shop(db, media):
    """Two embedded products and one whose image is uploaded but not embedded yet (``late``)."""
    embedded = [ProductImageFactory(data=png(colour)).product for colour in ((220, 20, 20), (20, 20, 220))]
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    late = ProductFactory()
    ProductImageFactory(product=late, data=png((20, 200, 20)))  # pending: no worker ran for it
    assert not ImageEmbedding.objects.filter(image__product=late, state="ready").exists()
    return embedded, late


@pytest.fixture
def redis_unreachable(settings, tmp_path):
    """Queries go to the workers, through a broker on a socket where nothing listens."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 5.0}
    with celery_broker(f"redis+socket://{tmp_path / 'nobody-listens.sock'}"):
        yield


@pytest.mark.parametrize(("method", "path", "data"), [
    ("get", "/api/search/text/", {"q": "red"}),
    ("post", "/api/search/composed/", {"product": "EMBEDDED", "text": "in blue"}),
])
def test_a_search_while_redis_is_unreachable_is_503_with_a_message(shop, redis_unreachable, method, path, data):
    data = {k: shop[0][0].pk if v == "EMBEDDED" else v for k, v in data.items()}
    started = time.monotonic()
    response = getattr(APIClient(), method)(path, data, format="json" if method == "post" else None)
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.content
    assert response.json()["detail"].startswith("The task queue cannot be reached (")
    assert response.json()["detail"].endswith("). Try again shortly.")
    assert elapsed < 10  # publishing gives up after its few retries, not after a long hang



def test_the_storefront_says_so_while_redis_is_unreachable(client, shop, redis_unreachable):
    response = client.get("/", {"q": "red"})
    assert response.status_code == 503
    assert "The task queue cannot be reached" in response.content.decode()


def test_more_like_this_needs_no_queue_while_redis_is_unreachable(shop, redis_unreachable):
    """A stored vector is the query: nothing to encode, so nothing to wait for."""
    embedded, _ = shop
    response = APIClient().get("/api/search/similar/", {"product": embedded[0].pk})
    assert response.status_code == 200, response.content
    assert [r["product"]["id"] for r in response.json()["results"]] == [embedded[1].pk]


@pytest.mark.parametrize(("path", "field", "reference"), [
    ("/api/search/composed/", "product", "product"),
    ("/api/search/composed/", "image_id", "image"),
    ("/api/search/image/", "image_id", "image"),
])
def test_a_reference_not_embedded_yet_is_400_on_its_field(shop, path, field, reference):
    _, late = shop
    value = late.pk if reference == "product" else late.p2w_images.get().pk
    payload = {field: value} | ({"text": "in red"} if path.endswith("/composed/") else {})
    response = APIClient().post(path, payload, format="json")
    assert response.status_code == 400, response.content
    [reason] = response.json()[field]
    assert "not embedded yet; try again once indexing is done." in reason


def test_api_docs_page_answers_and_names_the_schema_url(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    assert '"/api/schema/"' in html  # the page loads the schema from there
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and "/api/search/composed/" in schema.json()["paths"]

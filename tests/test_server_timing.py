"""The ``Server-Timing`` header of the search views: where a search's time went."""

import re

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.models import ImageEmbedding
from tests.factories import ProductFactory, ProductImageFactory, png

COLOURS = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]


def timings(response):
    """``{name: milliseconds}`` of a response's Server-Timing header."""
    entries = dict(re.fullmatch(r"(\w+);dur=([0-9.]+)", part.strip()).groups()
                   for part in response["Server-Timing"].split(","))
    return {name: float(value) for name, value in entries.items()}


def embedded_products():
    """Three products with one embedded image each, committed (a worker process must see them)."""
    with transaction.atomic():
        images = [ProductImageFactory(product=ProductFactory(), data=png(colour)) for colour in COLOURS]
        model = indexing.register_model()
        indexing.queue_images(images)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return [image.product for image in images]


def composed_search(products):
    return APIClient().post("/api/search/composed/", {"product": products[0].pk, "text": "in green"}, format="json")


@pytest.mark.django_db
def test_a_composed_search_says_where_its_time_went(media):
    response = composed_search(embedded_products())

    assert response.status_code == 200, response.content
    spent = timings(response)
    assert list(spent) == ["encode", "sql", "serialize", "total"]  # encoded in this process: no queue
    assert 0 < spent["encode"] + spent["sql"] + spent["serialize"] <= spent["total"]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_search_encoded_on_the_query_worker_names_the_queue_apart(start_worker, settings):
    products = embedded_products()
    start_worker(queues=[settings.P2W_SEARCH["QUERY_QUEUE"]])
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker"}

    response = composed_search(products)

    assert response.status_code == 200, response.content
    spent = timings(response)
    assert set(spent) == {"encode", "queue", "sql", "serialize", "total"}
    assert spent["encode"] > 0 and spent["encode"] + spent["queue"] <= spent["total"]

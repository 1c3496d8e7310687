"""Every kind of search on a shop whose products are keyed by UUID (issue 20, item 2)."""

import io
import uuid

import pytest

from p2w_search import index
from p2w_search.embedders import get_embedder
from p2w_search.models import ProductImage
from tests.ranking import assert_ranking, product_scores
from tests.testshop.tests.shop import COLOURS, png

VISIBLE = ["red lamp", "blue lamp", "green light", "yellow cushion", "white rug", "black planter", "orange stool"]


def ids(response):
    assert response.status_code == 200, response.content
    return [result["product"]["id"] for result in response.json()["results"]]


def keys(catalog, *names):
    return [str(catalog[name].pk) for name in names]


def upload(data):
    file = io.BytesIO(data)
    file.name = "query.png"
    return file


def test_text_search_ranks_the_published_products_by_uuid_with_the_shops_data(client, catalog):
    response = client.get("/api/search/text/", {"q": "a red lamp"})

    query = get_embedder().embed_texts(["a red lamp"])[0]
    visible = [catalog[name] for name in VISIBLE]
    assert_ranking([uuid.UUID(pk) for pk in ids(response)], product_scores(query, among=visible))
    rows = {row["product"]["id"]: row for row in response.json()["results"]}
    green = rows[str(catalog["green light"].pk)]
    assert green["product"] == {"id": str(catalog["green light"].pk), "sku": "SKU-2", "title": "green light",
                                "brand": "acme", "categories": ["lighting"], "price": "70.00", "num_in_stock": 2}
    url = green["image"]["url"]  # the shop's own file, in the shop's own storage
    assert url.startswith("http://testserver/shop-images/testshop/images/SKU-2-0"), url
    served = client.get(url)
    assert served.status_code == 200 and b"".join(served.streaming_content) == png(COLOURS["green"])


def test_exclude_takes_uuids(client, catalog):
    left_out = keys(catalog, "red lamp", "white rug")
    response = client.get("/api/search/text/", {"q": "lamp", "exclude": ",".join(left_out)})
    assert sorted(ids(response)) == sorted(keys(catalog, *[n for n in VISIBLE if n not in ("red lamp", "white rug")]))


def test_more_like_this_by_uuid(client, catalog):
    red = catalog["red lamp"]
    response = client.get("/api/search/similar/", {"product": str(red.pk), "exclude": str(catalog["black planter"].pk)})

    query = index.stored_query_vector(index.serving_model(), red.p2w_images.all())
    among = [catalog[name] for name in VISIBLE if name not in ("red lamp", "black planter")]
    assert_ranking([uuid.UUID(pk) for pk in ids(response)], product_scores(query, among=among))


def test_image_search_by_upload_and_by_catalog_image(client, catalog):
    uploaded = client.post("/api/search/image/", {"image": upload(png(COLOURS["yellow"], size=(48, 32)))},
                           format="multipart")
    assert ids(uploaded)[0] == str(catalog["yellow cushion"].pk)

    image = ProductImage.objects.get(product=catalog["blue lamp"])
    by_id = client.post("/api/search/image/?k=3", {"image_id": image.pk}, format="json")
    assert len(ids(by_id)) == 3 and str(catalog["blue lamp"].pk) not in ids(by_id)


@pytest.mark.parametrize("reference", ["product", "image_id", "image"])
def test_composed_search_by_each_kind_of_reference(client, catalog, reference):
    blue = catalog["blue lamp"]
    given = {"product": {"product": str(blue.pk)},
             "image_id": {"image_id": ProductImage.objects.get(product=blue).pk},
             "image": {"image": upload(png(COLOURS["blue"]))}}[reference]
    response = client.post("/api/search/composed/?k=4", {**given, "text": "in red"},
                           format="multipart" if reference == "image" else "json")

    found = ids(response)
    assert len(found) == 4
    if reference != "image":  # the reference product is not an answer to "like this, but ..."
        assert str(blue.pk) not in found


def test_an_unpublished_product_is_neither_found_nor_a_reference(client, catalog):
    purple = catalog["purple lamp"]
    found = ids(client.get("/api/search/text/", {"q": "purple lamp", "k": 20}))
    assert str(purple.pk) not in found and len(found) == len(VISIBLE)

    for response in (client.get("/api/search/similar/", {"product": str(purple.pk)}),
                     client.post("/api/search/composed/", {"product": str(purple.pk), "text": "in red"},
                                 format="json")):
        assert response.status_code == 400
        assert response.json() == {"product": [f"There is no product with id {purple.pk}."]}


@pytest.mark.parametrize("value", ["12", "not-a-uuid", "5f0c7d7e-1a8b-4c1e-9e8f"])
def test_a_malformed_uuid_is_a_400_naming_the_field(client, catalog, value):
    similar = client.get("/api/search/similar/", {"product": value})
    assert similar.status_code == 400
    assert similar.json() == {"product": [f"{value!r} is not a product id."]}

    composed = client.post("/api/search/composed/", {"product": value, "text": "in red"}, format="json")
    assert composed.status_code == 400
    assert composed.json() == {"product": [f"{value!r} is not a product id."]}

    excluded = client.get("/api/search/text/", {"q": "lamp", "exclude": f"{catalog['red lamp'].pk},{value}"})
    assert excluded.status_code == 400
    assert excluded.json() == {"exclude": [f"{value!r} is not a product id. Give product ids separated by commas."]}


def test_a_json_number_is_no_uuid(client, catalog):
    response = client.post("/api/search/composed/", {"product": 12, "text": "in red"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"product": ["'12' is not a product id."]}


def test_a_uuid_of_no_product_is_a_400(client, catalog):
    missing = uuid.uuid4()
    response = client.get("/api/search/similar/", {"product": str(missing)})
    assert response.status_code == 400
    assert response.json() == {"product": [f"There is no product with id {missing}."]}


def test_a_page_of_results_costs_the_same_queries_whatever_its_length(client, catalog):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for k in (1, 7):  # categories and stock records are read through PRODUCT_QUERYSET's prefetches
        with CaptureQueriesContext(connection) as queries:
            assert len(ids(client.get("/api/search/text/", {"q": "lamp", "k": k}))) == k
        counts.append(len(queries))
    assert counts[0] == counts[1]

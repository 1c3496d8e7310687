"""Hostile input to the searches, fourth round: each is a 4xx that names the field and the reason, never a 500
and never a silently wrong answer.

Id filters of only commas, a price range upside down, a products queryset that matches
nothing, texts and changes the model reads as nothing (``&nbsp;``, control or invisible
characters), and references with no image in the search index (none uploaded, or all taken
out of search), through the API, the storefront and the query worker's batches.
"""

import io

import pytest
from django.test import Client
from rest_framework.test import APIClient

from p2w_search import encoding, indexing, search
from p2w_search.models import EmbeddingModel
from shop_demo.catalog.models import Product
from tests.factories import ProductFactory, ProductImageFactory, embed_catalog, png, solid_colour_shop

TEXT = "/api/search/text/"
IMAGE = "/api/search/image/"
COMPOSED = "/api/search/composed/"
SIMILAR = "/api/search/similar/"
# Texts the tokenizer cleans to nothing: an entity for a space, control characters, a byte order mark.
NOTHING = ["&nbsp;", "\x01\x02", "\ufeff", "&nbsp;&#32;&#9;",
           "\u200b", "\u00ad \u202e\u2066", "&#8203;\u200c\u200d\u2060"]  # format characters only (Cf)
_NO_WORDS = "has nothing the search model reads (only spaces, invisible or control characters, or entities like &nbsp;)"
NO_WORDS_IN_TEXT = f"Write what you are looking for in words: this text {_NO_WORDS}."
NO_WORDS_IN_CHANGE = f"Write the change in words: this one {_NO_WORDS}."
NO_IMAGES = "This product has no image in the search index, so there is nothing to search by."


@pytest.fixture
def client():
    return APIClient(raise_request_exception=True)


@pytest.fixture
def shop(db, media):
    return solid_colour_shop()


def upload(data, name="photo.png"):
    file = io.BytesIO(data)
    file.name = name
    return file


# --- filters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [TEXT, SIMILAR])
@pytest.mark.parametrize(("name", "value"), [("merchant", ","), ("merchant", ",,"), ("category", ","),
                                             ("category", " , ")])
def test_a_list_filter_of_only_commas_is_400_naming_it(client, shop, path, name, value):
    """``merchant=,`` was an empty IN list: Django's EmptyResultSet, a 500; ``category=,`` silently no results."""
    params = {"q": "red"} if path == TEXT else {"product": shop[0].pk}
    response = client.get(path, {**params, name: value})
    assert response.status_code == 400, response.content
    assert response.json() == {name: ["Enter one or more values separated by commas."]}


@pytest.mark.parametrize("path", [TEXT, SIMILAR])
def test_a_price_range_upside_down_is_400_on_its_upper_bound(client, shop, path):
    """``price_min=30&price_max=10`` was no results and no word why; the storefront already refused it."""
    params = {"q": "red"} if path == TEXT else {"product": shop[0].pk}
    response = client.get(path, {**params, "price_min": "30", "price_max": "10"})
    assert response.status_code == 400, response.content
    assert response.json() == {"price_max": ["Ensure this value is greater than or equal to price_min (30)."]}
    equal = client.get(path, {**params, "price_min": "30", "price_max": "30"})
    assert equal.status_code == 200 and [r["product"]["id"] for r in equal.json()["results"]] == [shop[2].pk]


@pytest.mark.parametrize("products", [lambda: Product.objects.none(), lambda: Product.objects.filter(pk__in=[])])
def test_a_products_queryset_that_matches_nothing_has_no_results_not_an_error(shop, products):
    """A host shop's view passing ``none()`` (or ``pk__in=[]``) made the ranking raise EmptyResultSet: a 500."""
    assert search.text("red", products=products()).hits == []
    assert search.similar(shop[0], products=products()).hits == []
    assert search.composed(text="in red", product=shop[0], products=products()).hits == []


# --- texts the model reads as nothing ------------------------------------------------------------------


@pytest.mark.parametrize("text", NOTHING)
def test_a_text_the_model_reads_as_nothing_is_400_on_q(client, shop, text):
    """It was searched as the empty sentence: products ranked by nothing, as if the shopper had asked for them."""
    response = client.get(TEXT, {"q": text})
    assert response.status_code == 400, response.content
    assert response.json() == {"q": [NO_WORDS_IN_TEXT]}


@pytest.mark.parametrize("text", NOTHING)
def test_a_change_the_model_reads_as_nothing_is_400_on_text(client, shop, text):
    """It was composed as "a photo of * , ": the reference alone, presented as the change's answer."""
    for body, kind in (({"product": shop[0].pk, "text": text}, "json"),
                       ({"image": upload(png()), "text": text}, "multipart")):
        response = client.post(COMPOSED, body, format=kind)
        assert response.status_code == 400, response.content
        assert response.json() == {"text": [NO_WORDS_IN_CHANGE]}


@pytest.mark.parametrize("text", NOTHING)
def test_the_storefront_refuses_words_and_changes_the_model_reads_as_nothing(shop, text):
    client = Client(raise_request_exception=True)
    escaped = "Write what you are looking for in words: this text has nothing the search model reads"
    words = client.get("/", {"q": text})
    assert words.status_code == 400 and escaped in words.content.decode()
    changed = client.get(f"/product/{shop[0].pk}/", {"change": text})
    assert changed.status_code == 400
    assert "Write the change in words: this one has nothing the search model reads" in changed.content.decode()
    photo = client.post("/", {"photo": upload(png()), "change": text})
    assert photo.status_code == 400
    assert "Write the change in words: this one has nothing the search model reads" in photo.content.decode()


def test_the_query_worker_refuses_a_text_of_nothing_alone_in_its_batch(shop):
    """The worker checks it too (its tokenizer may clean more than a web process without ftfy)."""
    model = EmbeddingModel.objects.get(state=EmbeddingModel.State.SERVING)
    refused, encoded = encoding.encode_many(model.pk, [(encoding.TEXT, "\x01"), (encoding.TEXT, "red")])
    assert isinstance(refused, encoding.QueryRejected)
    assert (refused.field, refused.reason) == ("q", NO_WORDS_IN_TEXT)
    assert isinstance(encoded, list) and len(encoded) == model.dimensions


# --- references with no image in the search index --------------------------------------------------------


@pytest.fixture
def imageless(shop):
    """A product with no image at all, and one whose only image was taken out of search."""
    bare = ProductFactory()
    removed = ProductFactory()
    ProductImageFactory(product=removed, data=png((200, 200, 0)))
    embed_catalog()
    indexing.remove_from_index(list(removed.p2w_images.all()))
    return {"bare": bare, "removed": removed}


@pytest.mark.parametrize("which", ["bare", "removed"])
def test_a_product_with_no_image_in_the_index_is_said_so_not_to_wait_for_indexing(client, imageless, which):
    """It was "not embedded yet; try again once indexing is done": a wait for something that never comes."""
    product = imageless[which]
    for response in (client.get(SIMILAR, {"product": product.pk}),
                     client.post(COMPOSED, {"product": product.pk, "text": "in red"}, format="json")):
        assert response.status_code == 400, response.content
        assert response.json() == {"product": [NO_IMAGES]}


@pytest.mark.parametrize("which", ["bare", "removed"])
def test_the_product_page_of_a_product_with_no_image_in_the_index_says_so(imageless, which):
    """It was a 503 with Retry-After and "not in the search index yet; try again once indexing is done"."""
    product = imageless[which]
    response = Client(raise_request_exception=True).get(f"/product/{product.pk}/", {"change": "in red"})
    html = response.content.decode()
    assert response.status_code == 200 and not response.has_header("Retry-After")
    assert html.count(NO_IMAGES) == 2  # "like this, but ..." and "more like this"
    assert "try again once indexing is done" not in html


@pytest.mark.parametrize(("path", "extra"), [(IMAGE, {}), (COMPOSED, {"text": "in red"})])
def test_an_image_taken_out_of_search_is_refused_as_such(client, imageless, path, extra):
    image = imageless["removed"].p2w_images.get()
    response = client.post(path, {"image_id": image.pk, **extra}, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"image_id": [f"Product image {image.pk} is not in the search index (it was taken "
                                            "out of search), so there is nothing to search by."]}

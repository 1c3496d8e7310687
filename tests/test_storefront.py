"""The shoppers' storefront: browse, search by words and by photo, filters, "more like this", "like this, but ..."."""

import io
import re
from decimal import Decimal

import numpy as np
import pytest
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.embedders import get_embedder
from p2w_search.imaging import load_image
from p2w_search.models import ImageEmbedding
from tests.factories import ProductFactory, ProductImageFactory, png
from tests.ranking import assert_ranking, product_scores

# (colour, category, price, in stock)
CATALOG = [
    ((220, 20, 20), "mug", "9.99", True),
    ((20, 200, 40), "t-shirt", "19.99", True),
    ((20, 40, 220), "mug", "14.50", False),
    ((10, 10, 10), "t-shirt", "29.00", True),
    ((245, 245, 245), "cap", "12.00", True),
    ((240, 200, 20), "mug", "7.49", True),
]


def make_catalog():
    products = []
    for colour, category, price, in_stock in CATALOG:
        product = ProductFactory(category=category, price=Decimal(price), in_stock=in_stock)
        ProductImageFactory(product=product, data=png(colour))
        products.append(product)
    return products


def embed_catalog():
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return model


@pytest.fixture
def shop(db, media):
    products = make_catalog()
    embed_catalog()
    return products


def grid_ids(response, name="results"):
    """Product ids of one grid of the page, in order; [] for the grid's "no products" line.

    A page without the grid at all (an error page, another template) fails the test: an
    empty list must mean that the shopper saw an empty grid.
    """
    html = response.content.decode()
    match = re.search(rf'<ul class="grid[^"]*" data-grid="{name}">(.*?)</ul>', html, re.S)
    if match:
        return [int(pk) for pk in re.findall(r'data-product-id="(\d+)"', match.group(1))]
    assert f'<p class="empty" data-grid="{name}">' in html, f"the page has no {name!r} grid"
    return []


def upload(data, name="photo.png"):
    file = io.BytesIO(data)
    file.name = name
    return file


def test_home_shows_the_newest_products_with_image_title_price_and_category(client, shop):
    response = client.get("/")
    assert response.status_code == 200
    assert grid_ids(response) == [p.pk for p in reversed(shop)]
    html = response.content.decode()
    first = shop[-1]
    assert first.title in html and "€7.49" in html
    assert first.p2w_images.get().file.url in html
    assert '<option value="cap">Cap</option>' in html  # the category select lists the shop's categories


def test_home_browses_before_any_model_serves(client, db, media):
    products = make_catalog()
    response = client.get("/")
    assert response.status_code == 200
    assert grid_ids(response) == [p.pk for p in reversed(products)]


def test_browsing_pages_through_the_catalog(client, db, media):
    products = [ProductFactory() for _ in range(30)]
    first, second = client.get("/"), client.get("/?page=2")
    assert grid_ids(first) == [p.pk for p in reversed(products)][:24]
    assert grid_ids(second) == [p.pk for p in reversed(products)][24:]
    assert "Page 2 of 2" in second.content.decode()


def test_text_search_ranks_products_by_the_query(client, shop):
    response = client.get("/", {"q": "a red mug"})
    assert response.status_code == 200
    query = get_embedder().embed_texts(["a red mug"])[0]
    assert_ranking(grid_ids(response), product_scores(query, among=shop))
    assert "Results for “a red mug”" in response.content.decode()


def test_filters_apply_to_search_and_to_browsing(client, shop):
    filters = {"category": "mug", "price_max": "12", "in_stock": "on"}
    expected = {p.pk for p in shop if p.category == "mug" and p.price <= 12 and p.in_stock}
    assert len(expected) == 2

    searched = client.get("/", {"q": "a red mug", **filters})
    browsed = client.get("/", filters)
    assert searched.status_code == browsed.status_code == 200
    query = get_embedder().embed_texts(["a red mug"])[0]
    assert_ranking(grid_ids(searched), product_scores(query, among=[p for p in shop if p.pk in expected]))
    assert grid_ids(browsed) == sorted(expected, reverse=True)  # browsing: newest first
    assert grid_ids(client.get("/", {"price_min": "13", "price_max": "20"})) == [shop[2].pk, shop[1].pk]
    nothing = client.get("/", {"q": "a red mug", "category": "cap", "price_max": "5"})
    assert grid_ids(nothing) == []
    assert "No products match. Try other words or fewer filters." in nothing.content.decode()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"price_min": "cheap"}, "Enter a number."),
        ({"price_min": "30", "price_max": "10"}, "The maximum price is below the minimum."),
        ({"category": "spaceship"}, "Select a valid choice."),
        ({"q": "x" * 201}, "Ensure this value has at most 200 characters"),
    ],
)
def test_bad_filters_are_answered_400_with_the_reason(client, shop, params, reason):
    response = client.get("/", params)
    assert response.status_code == 400
    assert reason in response.content.decode()


def test_hidden_products_are_neither_shown_nor_searched(client, shop):
    hidden = shop[0]
    hidden.listed = False
    hidden.save()
    visible = [p for p in shop if p != hidden]
    assert grid_ids(client.get("/")) == [p.pk for p in reversed(visible)]
    assert_ranking(grid_ids(client.get("/", {"q": "red"})),
                   product_scores(get_embedder().embed_texts(["red"])[0], among=visible))
    assert client.get(f"/product/{hidden.pk}/").status_code == 404
    assert hidden.pk not in grid_ids(client.get(f"/product/{shop[1].pk}/"), "similar")


def test_product_page_shows_the_product_and_more_like_this(client, shop):
    product = shop[0]
    response = client.get(f"/product/{product.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert product.title in html and "€9.99" in html and 'name="change"' in html

    # The query of "more like this": the product's stored vector, normalised (index.stored_query_vector).
    own = np.asarray(ImageEmbedding.objects.get(image__product=product).vector, dtype=np.float32)
    own /= np.linalg.norm(own)
    others = [p for p in shop if p != product]
    assert_ranking(grid_ids(response, "similar"), product_scores(own, among=others))


def test_a_product_not_yet_embedded_says_so_instead_of_similar_products(client, shop):
    newcomer = ProductFactory(category="mug")
    ProductImageFactory(product=newcomer, data=png((90, 90, 90)))  # uploaded, not embedded yet
    response = client.get(f"/product/{newcomer.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert newcomer.title in html
    assert '<p class="notice">This product is not in the search index yet' in html
    assert 'data-grid="similar"' not in html  # a notice instead of the grid, not an empty grid


def test_unknown_product_is_404(client, shop):
    response = client.get("/product/999999/")
    assert response.status_code == 404
    assert "We couldn’t find that page" in response.content.decode()


@pytest.mark.parametrize("method", [None, "pic2word", "image_only", "text_only", "image_plus_text", "fusion"])
def test_like_this_but_ranks_as_the_composed_api_and_leaves_the_product_out(client, shop, method):
    product = shop[0]
    params = {"change": "in green"} | ({"method": method} if method else {})
    response = client.get(f"/product/{product.pk}/", params)
    assert response.status_code == 200, response.content
    ids = grid_ids(response, "changed")
    assert product.pk not in ids and len(ids) == len(shop) - 1

    payload = {"product": product.pk, "text": "in green", "method": method or "pic2word"}
    api = APIClient().post("/api/search/composed/", payload, format="json").json()
    assert ids == [r["product"]["id"] for r in api["results"]]
    similar = APIClient().get("/api/search/similar/", {"product": product.pk}).json()
    assert grid_ids(response, "similar") == [r["product"]["id"] for r in similar["results"]]  # still there


def test_like_this_but_links_to_products_so_a_shopper_can_refine_again(client, shop):
    response = client.get(f"/product/{shop[0].pk}/", {"change": "in blue"})
    next_product = grid_ids(response, "changed")[0]
    assert f'href="/product/{next_product}/"' in response.content.decode()
    again = client.get(f"/product/{next_product}/", {"change": "with stripes"})
    assert again.status_code == 200
    refined = grid_ids(again, "changed")
    assert sorted(refined) == sorted(p.pk for p in shop if p.pk != next_product)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"change": "very " * 40 + "red"}, "tokens"),
        ({"change": "in red", "method": "magic"}, "Select a valid choice."),
        ({"change": "x" * 301}, "Ensure this value has at most 300 characters"),
    ],
)
def test_bad_changes_are_answered_400_with_the_reason(client, shop, params, reason):
    response = client.get(f"/product/{shop[0].pk}/", params)
    assert response.status_code == 400
    assert reason in response.content.decode()


def test_photo_search_ranks_products_like_the_photo_within_the_filters(client, shop):
    photo = png((30, 50, 210))
    response = client.post("/?category=mug", {"photo": upload(photo)})
    assert response.status_code == 200, response.content
    query = get_embedder().embed_images([load_image(photo, max_bytes=10**7, max_pixels=10**7)])[0]
    assert_ranking(grid_ids(response), product_scores(query, among=[p for p in shop if p.category == "mug"]))
    assert "Products like your photo" in response.content.decode()
    assert 'src="data:image/jpeg;base64,' in response.content.decode()  # the shopper sees their photo


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.4 not an image at all", "This photo cannot be used: not a recognised image format."),
        (png()[:60], "This photo cannot be used: image data is truncated or corrupt."),
        (b"", "The submitted file is empty."),
    ],
)
def test_a_bad_upload_is_answered_400_with_the_reason(client, shop, data, reason):
    response = client.post("/", {"photo": upload(data, "notes.pdf")})
    assert response.status_code == 400
    assert reason in response.content.decode()


def test_a_photo_over_the_pixel_limit_is_refused_with_the_limit(client, shop, settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "MAX_IMAGE_PIXELS": 1000}
    response = client.post("/", {"photo": upload(png(size=(50, 50)))})
    assert response.status_code == 400
    assert "image is 50x50 pixels, more than the limit" in response.content.decode()


def test_no_serving_model_answers_503_with_a_message(client, db, media):
    product = make_catalog()[0]
    for response in (
        client.get("/", {"q": "red"}),
        client.post("/", {"photo": upload(png())}),
        client.get(f"/product/{product.pk}/", {"change": "in red"}),
    ):
        assert response.status_code == 503
        assert "Search is not ready yet" in response.content.decode()
    page = client.get(f"/product/{product.pk}/")  # the product itself still shows
    assert page.status_code == 200 and "Search is not ready yet" in page.content.decode()


def test_no_worker_answering_is_503_with_a_message(client, shop, settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 1.0,
                           "QUERY_QUEUE": "p2w_query_nobody_listens"}
    response = client.get("/", {"q": "red"})
    assert response.status_code == 503
    assert "No search worker answered within 1 s" in response.content.decode()
    assert response["Retry-After"]


@pytest.fixture
def rate_limited(settings):
    """Three anonymous searches a minute, counted from zero (the counts live in the cache)."""
    from django.core.cache import cache

    cache.clear()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "3/min"}
    yield
    cache.clear()


def test_anonymous_searches_on_the_pages_share_the_apis_rate_limit(client, shop, rate_limited):
    assert client.get("/api/search/text/", {"q": "red"}).status_code == 200  # one of the three
    assert len(grid_ids(client.get("/", {"q": "red"}))) == len(shop)
    assert len(grid_ids(client.get(f"/product/{shop[0].pk}/", {"change": "in blue"}), "changed")) == len(shop) - 1
    over = client.get("/", {"q": "blue"})
    assert over.status_code == 429
    assert "Too many searches from your address; try again in" in over.content.decode()
    changed = client.get(f"/product/{shop[0].pk}/", {"change": "in red"})
    assert changed.status_code == 429 and "Too many searches" in changed.content.decode()
    assert client.get("/").status_code == 200  # browsing is not a search

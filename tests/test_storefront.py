"""The shoppers' storefront: browse, search by words and by photo, filters, "more like this", "like this, but ..."."""

import io
import re
from decimal import Decimal
from urllib.parse import urlencode

import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from p2w_search.embedders import get_embedder
from p2w_search.imaging import load_image
from p2w_search.models import ImageEmbedding
from p2w_search.shopper.forms import METHOD_LABELS
from tests.factories import ProductFactory, ProductImageFactory, embed_catalog, png
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
    match = re.search(rf'<ul class="grid[^"]*" data-grid="{name}">(.*?)</ul>', html, re.DOTALL)
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


@pytest.mark.parametrize("method", [None, "pic2word_plus_image", "pic2word", "image_only", "text_only",
                                    "image_plus_text", "fusion"])
def test_like_this_but_ranks_as_the_composed_api_and_leaves_the_product_out(client, shop, method):
    product = shop[0]
    params = {"change": "in green"} | ({"method": method} if method else {})
    response = client.get(f"/product/{product.pk}/", params)
    assert response.status_code == 200, response.content
    ids = grid_ids(response, "changed")
    assert product.pk not in ids and len(ids) == len(shop) - 1

    payload = {"product": product.pk, "text": "in green", "method": method or "pic2word_plus_image"}
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
        ({"change": "x" * 301}, "Ensure each change has at most 300 characters (this one has 301)."),
    ],
)
def test_bad_changes_are_answered_400_with_the_reason(client, shop, params, reason):
    response = client.get(f"/product/{shop[0].pk}/", params)
    assert response.status_code == 400
    assert reason in response.content.decode()


def photo_search(client, data, *, query="", **fields):
    """POST a photo (and fields) to the home page: the 303 to its results' link, then that page."""
    posted = client.post(f"/{query}", {"photo": upload(data), **fields})
    assert posted.status_code == 303, posted.content
    return posted["Location"], client.get(posted["Location"])


def follow_up(link, **params):
    """``link`` (a results page's query string) with more parameters, as a form or a link of that page sends them."""
    return f"{link}&{urlencode(params, doseq=True)}"


def api_composed(data, text, method="pic2word_plus_image", query=""):
    """Product ids the composed API answers for an uploaded photo and a change, in order."""
    response = APIClient().post(f"/api/search/composed/{query}", {"image": upload(data), "text": text,
                                                                  "method": method}, format="multipart")
    assert response.status_code == 200, response.content
    return [r["product"]["id"] for r in response.json()["results"]]


def test_photo_search_ranks_products_like_the_photo_within_the_filters(client, shop):
    photo = png((30, 50, 210))
    link, response = photo_search(client, photo, query="?category=mug")
    assert re.fullmatch(r"/\?category=mug&photo=[\w-]+&method=pic2word_plus_image", link)
    assert response.status_code == 200, response.content
    query = get_embedder().embed_images([load_image(photo, max_bytes=10**7, max_pixels=10**7)])[0]
    assert_ranking(grid_ids(response), product_scores(query, among=[p for p in shop if p.category == "mug"]))
    assert "Products like your photo" in response.content.decode()
    assert 'src="data:image/jpeg;base64,' in response.content.decode()  # the shopper sees their photo


@pytest.mark.parametrize("method", ["pic2word", "fusion", "image_plus_text"])
def test_photo_plus_words_ranks_as_the_composed_api_in_one_step(client, shop, method):
    photo = png((30, 50, 210))
    _, response = photo_search(client, photo, change="in green", method=method)
    assert response.status_code == 200, response.content
    assert grid_ids(response) == api_composed(photo, "in green", method)
    html = response.content.decode()
    assert "Like your photo, but “in green”" in html and METHOD_LABELS[method] in html
    assert 'src="data:image/jpeg;base64,' in html


def test_a_photo_refined_twice_searches_both_changes_in_one_sentence_on_the_photo(client, shop):
    photo = png((30, 50, 210))
    link, first = photo_search(client, photo, change="in green")
    twice = client.get(follow_up(link, change="with stripes"))  # what the refine box sends
    assert twice.status_code == 200, twice.content
    assert grid_ids(twice) == api_composed(photo, "in green , with stripes")
    assert grid_ids(twice) != grid_ids(first)
    again = client.get(follow_up(link, change=["with stripes", "in black"]))
    assert grid_ids(again) == api_composed(photo, "in green , with stripes , in black")
    html = again.content.decode()
    assert "Like your photo, but “in green”, then “with stripes”, then “in black”" in html


def test_the_refine_box_keeps_the_photo_the_changes_the_method_and_the_filters(client, shop):
    link, response = photo_search(client, png((30, 50, 210)), query="?category=mug&in_stock=on", change="in red",
                                  method="fusion")
    form = re.search(r'<form class="p2w-refine".*?</form>', response.content.decode(), re.DOTALL).group(0)
    hidden = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form)
    token = re.search(r"photo=([\w-]+)", link).group(1)
    assert hidden == [("category", "mug"), ("in_stock", "on"), ("photo", token), ("change", "in red"),
                      ("method", "fusion")]
    assert '<input type="text" name="change"' in form  # the next change comes after the kept ones


def test_the_filters_form_keeps_the_photo_the_changes_and_the_method_once_each(client, shop):
    link, response = photo_search(client, png((30, 50, 210)), query="?category=mug", change="in red", method="fusion")
    form = re.search(r'<form id="filters".*?</form>', response.content.decode(), re.DOTALL).group(0)
    hidden = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form)
    token = re.search(r"photo=([\w-]+)", link).group(1)
    assert hidden == [("photo", token), ("change", "in red"), ("method", "fusion")]


def test_photo_results_page_through_and_filter_without_uploading_again(client, db, media):
    colours = [(int(r), int(g), int(b)) for r, g, b in np.random.default_rng(4).integers(0, 256, (30, 3))]
    products = []
    for i, colour in enumerate(colours):
        product = ProductFactory(category="mug" if i % 3 else "cap")
        ProductImageFactory(product=product, data=png(colour))
        products.append(product)
    embed_catalog()
    photo = png((30, 50, 210))
    link, first = photo_search(client, photo)
    second = client.get(link + "&page=2")
    assert first.status_code == second.status_code == 200
    query = get_embedder().embed_images([load_image(photo, max_bytes=10**7, max_pixels=10**7)])[0]
    assert len(grid_ids(first)) == 24 and len(grid_ids(second)) == 6
    assert_ranking(grid_ids(first) + grid_ids(second), product_scores(query, among=products))
    assert 'href="?photo=' in first.content.decode() and "More →" in first.content.decode()
    assert client.get(link + "&page=3").status_code == 404  # past the results, as browsing

    caps = client.get(link + "&category=cap")
    assert_ranking(grid_ids(caps), product_scores(query, among=[p for p in products if p.category == "cap"]))


def test_words_are_refined_by_a_change_as_one_text(client, shop):
    response = client.get("/", {"q": "a mug", "change": "in red"})
    assert response.status_code == 200
    query = get_embedder().embed_texts(["a mug in red"])[0]
    assert_ranking(grid_ids(response), product_scores(query, among=shop))
    assert "Results for “a mug”, but “in red”" in response.content.decode()


def test_a_kept_photo_is_refused_after_its_time_with_a_message_and_deleted(client, shop, settings, media):
    link, _ = photo_search(client, png((30, 50, 210)), change="in red")
    kept = list((media.parent / "uploads" / "p2w-photos").iterdir())
    assert len(kept) == 2  # the photo and its preview
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PHOTO_KEEP_SECONDS": 0}
    gone = client.get(follow_up(link, change="with stripes"))
    assert gone.status_code == 410
    html = gone.content.decode()
    assert "Your photo is no longer kept: photos are kept for 0 seconds after the upload. Upload it again" in html
    assert 'data-grid="results"' not in html and 'name="photo"' in html  # no results; the upload box is there
    assert list((media.parent / "uploads" / "p2w-photos").iterdir()) == []


def test_the_kept_photo_is_a_copy_of_at_most_1024_pixels_with_nothing_of_the_file_but_the_picture(client, shop,
                                                                                                     media):
    """The photo was kept as sent for 30 minutes: up to 10 MB each, and a phone's GPS position in its EXIF."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)}
    buffer = io.BytesIO()
    Image.new("RGB", (2400, 1200), (30, 50, 210)).save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    link, response = photo_search(client, buffer.getvalue())
    assert response.status_code == 200 and 'data-grid="results"' in response.content.decode()
    (kept,) = [p for p in (media.parent / "uploads" / "p2w-photos").iterdir() if p.suffix != ".jpg"]
    with Image.open(kept) as image:
        assert (image.format, image.size, dict(image.getexif())) == ("JPEG", (1024, 512), {})
    small = list(kept.parent.iterdir())
    link, _ = photo_search(client, png((30, 50, 210)))  # a small one keeps its size, and its exact pixels (PNG)
    (kept,) = [p for p in kept.parent.iterdir() if p not in small and p.suffix != ".jpg"]
    with Image.open(kept) as image:
        assert (image.format, image.size) == ("PNG", load_image(png((30, 50, 210)), max_bytes=10**7,
                                                                 max_pixels=10**8).size)


def test_a_kept_photo_is_served_only_to_the_session_that_sent_it(client, shop):
    link, response = photo_search(client, png((30, 50, 210)))
    assert response.status_code == 200
    other = Client().get(link)
    assert other.status_code == 404
    assert "This photo is not available here: photos are kept only for the browser that uploaded them." in (
        other.content.decode())


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"change": "in 5 * style"}, "Write the change in words, without &#x27;*&#x27;"),
        ({"change": "x" * 301}, "Ensure this value has at most 300 characters (it has 301)."),
        ({"change": "in red", "method": "magic"}, "Select a valid choice. magic is not one of the available choices."),
    ],
)
def test_a_bad_change_with_a_photo_is_answered_400_with_the_reason(client, shop, fields, reason, media):
    response = client.post("/", {"photo": upload(png()), **fields})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not (media.parent / "uploads" / "p2w-photos").exists()  # nothing kept


def test_more_changes_than_allowed_are_answered_400(client, shop):
    link, _ = photo_search(client, png((30, 50, 210)))
    response = client.get(follow_up(link, change=[f"in colour {i}" for i in range(6)]))
    assert response.status_code == 400
    assert "At most 5 changes in a row; remove one to add another." in response.content.decode()


def test_a_product_refined_twice_searches_both_changes_in_one_sentence(client, shop):
    product = shop[0]
    response = client.get(f"/product/{product.pk}/", {"change": ["in green", "with stripes"], "method": "pic2word"})
    assert response.status_code == 200, response.content
    api = APIClient().post("/api/search/composed/?k=12", {"product": product.pk, "text": "in green , with stripes",
                                                          "method": "pic2word"}, format="json").json()
    assert grid_ids(response, "changed") == [r["product"]["id"] for r in api["results"]]
    html = response.content.decode()
    assert "Like this, but “in green”, then “with stripes”" in html
    assert html.count("p2w_search/like_this.js") == 1  # two tags on the page (box and results), one script
    # each step can be taken back: the link without "in green" keeps "with stripes"
    assert 'href="?change=with+stripes&amp;method=pic2word"' in html


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
    posted = client.post("/", {"photo": upload(png())})
    assert posted.status_code == 303  # the photo is kept; its search says why it cannot run
    for response in (
        client.get("/", {"q": "red"}),
        client.get(posted["Location"]),
        client.get(f"/product/{product.pk}/", {"change": "in red"}),
    ):
        assert response.status_code == 503
        assert "Search is not ready yet" in response.content.decode()
    page = client.get(f"/product/{product.pk}/")  # the product itself still shows
    assert page.status_code == 200 and "Search is not ready yet" in page.content.decode()


def test_no_worker_answering_is_503_with_a_message(client, shop, settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 1.0,
                           "QUERY_QUEUE": "p2w_query_nobody_listens"}
    response = client.get("/", {"q": "red", "category": "mug"})
    assert response.status_code == 503
    assert "No search worker answered within 1 s" in response.content.decode()
    assert response["Retry-After"]
    # the shopper can still browse: the newest products within the filters, below the message
    assert grid_ids(response, "browse") == [p.pk for p in reversed(shop) if p.category == "mug"]
    assert grid_ids(client.get("/", {"category": "mug"})) == grid_ids(response, "browse")


@pytest.fixture
def rate_limited(settings):
    """Three anonymous searches a minute (counted from zero: each test starts with an empty cache)."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "3/min"}


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


@pytest.mark.parametrize("page", ["²", "٣", "0", "-1", "9" * 5000])
def test_a_page_that_is_not_a_page_number_is_no_such_page(client, db, page):
    """A page of "²" passed isdigit() and then failed int(): a 500 on every result page."""
    product = ProductFactory()
    for url in ("/", f"/product/{product.pk}/"):
        response = client.get(url, {"q": "red", "change": "in red", "page": page})
        assert response.status_code == 404 and "There is no such page of results." in response.content.decode()


def test_a_change_with_a_null_character_is_refused_as_the_api_refuses_it(client, db):
    product = ProductFactory()
    response = client.get(f"/product/{product.pk}/", {"change": "in\x00red"})
    assert response.status_code == 400 and "Null characters are not allowed." in response.content.decode()

"""The "like this, but ..." journey on a host shop's own pages: the app's template tags, PhotoSearchView, kept photos.

The pages are tests/like_this_urls.py's (no demo storefront); results are compared with the
search service called directly, which the API and the storefront also call.
"""

import io
import itertools
import re
import time
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client, RequestFactory

from p2w_search import photos, search
from p2w_search.shopper import journey
from tests.factories import png
from tests.hostile import wide_png
from tests.test_storefront import embed_catalog, make_catalog

pytestmark = pytest.mark.urls("tests.like_this_urls")

PHOTO = png((30, 50, 210))


@pytest.fixture
def shop(db, media):
    products = make_catalog()
    embed_catalog()
    return products


def upload(data=PHOTO, name="photo.png"):
    file = io.BytesIO(data)
    file.name = name
    return file


def grid_ids(response, name):
    """Product ids of one grid of the app's default cards template, in order; fails when the page has none."""
    html = response.content.decode()
    match = re.search(rf'<ul class="p2w-cards" data-grid="{name}">(.*?)</ul>', html, re.DOTALL)
    if match:
        return [int(pk) for pk in re.findall(r'data-product-id="(\d+)"', match.group(1))]
    assert f'<p class="p2w-empty" data-grid="{name}">' in html, f"the page has no {name!r} grid"
    return []


def ids(results):
    return [product.pk for product, _, _ in results.products()]


def kept_files(media):
    folder = media.parent / "uploads" / photos.FOLDER
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_host_product_page_shows_the_box_then_the_results_of_a_change(client, shop):
    product = shop[0]
    page = client.get(f"/shop/product/{product.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and '<input type="text" name="change"' in html
    assert 'data-grid="changed"' not in html  # nothing asked, nothing searched
    assert html.count("p2w_search/like_this.js") == 1 and html.count("p2w_search/like_this.css") == 1

    changed = client.get(f"/shop/product/{product.pk}/", {"change": "in green", "method": "fusion"})
    expected = search.composed(text="in green", product=product, method="fusion", k=12)
    assert grid_ids(changed, "changed") == ids(expected)
    assert product.pk not in grid_ids(changed, "changed")
    html = changed.content.decode()
    assert "Like this, but “in green”" in html and "Pic2Word + image + text (fusion)" in html
    assert 'value="in green"' in html  # the box shows what was asked


def test_a_host_product_page_refines_again_with_both_changes_in_one_sentence(client, shop):
    product = shop[0]
    first = client.get(f"/shop/product/{product.pk}/", {"change": "in green"})
    refine = re.search(r'<form class="p2w-refine".*?</form>', first.content.decode(), re.DOTALL).group(0)
    assert '<input type="hidden" name="change" value="in green">' in refine
    assert 'href="?change=in+green&amp;change=with+stripes&amp;method=pic2word_plus_image"' in refine  # a suggestion

    twice = client.get(f"/shop/product/{product.pk}/", {"change": ["in green", "with stripes"]})
    assert grid_ids(twice, "changed") == ids(search.composed(text="in green , with stripes", product=product, k=12))
    assert "Like this, but “in green”, then “with stripes”" in twice.content.decode()


def test_the_photo_view_keeps_the_photo_and_answers_with_its_results_link(client, shop):
    posted = client.post("/shop/photo/", {"photo": upload(), "change": "in green", "method": "pic2word"})
    assert posted.status_code == 303
    assert re.fullmatch(r"/shop/photo/\?photo=[\w-]+&change=in\+green&method=pic2word", posted["Location"])
    page = client.get(posted["Location"])
    assert page.status_code == 200
    assert grid_ids(page, "results") == ids(search.composed(text="in green", image=PHOTO, method="pic2word", k=24))
    html = page.content.decode()
    assert "Like your photo, but “in green”" in html and 'alt="Your photo"' in html

    again = client.get(posted["Location"] + "&" + urlencode({"change": "with stripes"}))
    assert grid_ids(again, "results") == ids(search.composed(text="in green , with stripes", image=PHOTO,
                                                             method="pic2word", k=24))


def test_the_photo_view_without_a_change_searches_by_the_photo(client, shop):
    posted = client.post("/shop/photo/", {"photo": upload()})
    page = client.get(posted["Location"])
    assert grid_ids(page, "results") == ids(search.image(PHOTO, k=24))
    assert "Products like your photo" in page.content.decode()


def test_the_photo_views_filter_hook_limits_and_pages_the_results(client, shop):
    posted = client.post("/shop/mugs-by-photo/", {"photo": upload()})
    first, second = client.get(posted["Location"]), client.get(posted["Location"] + "&page=2")
    mugs = search.visible_products().filter(category="mug")
    expected = ids(search.image(PHOTO, products=mugs, k=3))
    assert len(expected) == 3
    assert grid_ids(first, "results") == expected[:2] and grid_ids(second, "results") == expected[2:]
    assert client.get(posted["Location"] + "&page=3").status_code == 404


@pytest.mark.parametrize(
    ("data", "fields", "reason"),
    [
        (b"not an image", {}, "This photo cannot be used: not a recognised image format."),
        (wide_png(), {}, "This photo cannot be used: image is 160000x1 pixels; its long side may be at most 20 "
                         "times its short side."),
        (PHOTO, {"change": "5 * hotel"}, "Write the change in words, without &#x27;*&#x27;"),
    ],
)
def test_the_photo_view_refuses_what_cannot_be_used_with_400_and_keeps_nothing(client, shop, media, data, fields,
                                                                                reason):
    response = client.post("/shop/photo/", {"photo": upload(data), **fields})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert kept_files(media) == []


def test_the_photo_view_answers_with_the_status_of_its_search(client, shop, settings, media):
    link = client.post("/shop/photo/", {"photo": upload()})["Location"]
    assert Client().get(link).status_code == 404  # another browser
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 1.0,
                           "QUERY_QUEUE": "p2w_query_nobody_listens"}
    busy = client.get(link)
    assert busy.status_code == 503 and "No search worker answered within 1 s" in busy.content.decode()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PHOTO_KEEP_SECONDS": 0}
    gone = client.get(link)
    assert gone.status_code == 410 and "Your photo is no longer kept" in gone.content.decode()
    assert kept_files(media) == []


def test_a_session_keeps_its_latest_photos_only(client, shop, media):
    links = [client.post("/shop/photo/", {"photo": upload(png((i * 40, 10, 10)))})["Location"]
             for i in range(photos.KEPT_PER_SESSION + 1)]
    assert len(kept_files(media)) == 2 * photos.KEPT_PER_SESSION  # each with its preview
    assert client.get(links[0]).status_code == 404  # the oldest was let go
    assert all(client.get(link).status_code == 200 for link in links[1:])


def test_remove_expired_deletes_every_sessions_old_photos_and_keeps_the_others(client, shop, media, settings):
    old = client.post("/shop/photo/", {"photo": upload()})["Location"]
    other = Client()
    fresh = other.post("/shop/photo/", {"photo": upload(png((10, 200, 10)))})["Location"]
    assert len(kept_files(media)) == 4
    assert photos.remove_expired(now=time.time() + settings.P2W_SEARCH.get("PHOTO_KEEP_SECONDS", 1800) + 5) == 2
    assert kept_files(media) == []
    assert client.get(old).status_code == 410 and other.get(fresh).status_code == 410
    assert photos.remove_expired() == 0


def test_the_photos_of_all_sessions_together_are_kept_to_the_most_the_newest_first(shop, media, settings,
                                                                                    monkeypatch):
    """Each address has its budget and each session its 5 photos; many addresses at once must not fill the disk."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PHOTO_KEEP_MAX": 2}
    clock = itertools.count(int(time.time()))  # a second between reads: the names order the uploads
    monkeypatch.setattr(photos.time, "time", lambda: next(clock))
    shoppers = [Client() for _ in range(3)]
    links = [shopper.post("/shop/photo/", {"photo": upload(png((i * 60, 10, 10)))})["Location"]
             for i, shopper in enumerate(shoppers)]

    assert len(kept_files(media)) == 2 * 2  # each with its preview
    gone = shoppers[0].get(links[0])
    assert gone.status_code == 410
    assert ("Your photo is no longer kept: the shop keeps a limited number of photos of all shoppers at once. "
            "Upload it again to search with it.") in gone.content.decode()
    assert [shopper.get(link).status_code for shopper, link in zip(shoppers[1:], links[1:])] == [200, 200]
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PHOTO_KEEP_MAX": 1}
    assert photos.remove_expired() == 1 and shoppers[1].get(links[1]).status_code == 410
    assert shoppers[2].get(links[2]).status_code == 200


def test_the_tags_need_the_request_and_a_known_part(shop):
    with pytest.raises(ImproperlyConfigured, match="needs the request in the template context"):
        Template("{% load p2w_search %}{% like_this product %}").render(Context({"product": shop[0]}))
    request = RequestFactory().get("/")
    with pytest.raises(TemplateSyntaxError, match="part must be 'box' or 'results', not 'both'"):
        Template('{% load p2w_search %}{% like_your_photo part="both" %}').render(Context({"request": request}))


def test_the_box_of_a_product_the_search_leaves_out_says_so_instead_of_waiting_for_indexing(shop, settings):
    """It was a 503 with "not in the search index yet; try again once indexing is done", for ever: the page of a
    product that SEARCH_FILTER leaves out (out of stock here), which a shop may still show."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_FILTER": {"listed": True, "in_stock": True}}
    hidden = next(product for product in shop if not product.in_stock)
    request = RequestFactory().get(f"/shop/product/{hidden.pk}/", {"change": "in red"})
    html = Template("{% load p2w_search %}{% like_this product %}").render(
        Context({"request": request, "product": hidden}))
    assert journey.for_product(request, hidden).status == 200  # the memo of this request: the box's own outcome
    assert "This product is not among the products searched now, so there is nothing to search by." in html
    assert "indexing" not in html and 'data-grid="changed"' not in html

"""Hostile links and uploads on the shopper's pages (the storefront and a host shop's photo page), not the API.

Each is a page with a status and a sentence that says what is wrong, never a 500, minutes of
CPU, or results for something the shopper did not ask: a parameter given twice, bytes that are
not text, a link of hundreds of changes, two photos in one upload, a page past the catalog's
end, uploads past the anonymous budget, a form without its CSRF cookie, more parameters than
Django takes, and a kept photo let go or removed from storage meanwhile.
"""

import io
import re
import time

import pytest
from django.test import Client

from p2w_search import photos
from tests.factories import embed_catalog, png
from tests.test_storefront import grid_ids, make_catalog

PHOTO = png((30, 50, 210))
NO_SUCH_PAGE = "There is no such page of products."


@pytest.fixture
def shop(db, media):
    products = make_catalog()
    embed_catalog()
    return products


@pytest.fixture
def client():
    return Client(raise_request_exception=True)


def upload(data=PHOTO, name="photo.png"):
    file = io.BytesIO(data)
    file.name = name
    return file


def kept_files(media):
    folder = media.parent / "uploads" / photos.FOLDER
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def photo_link(client, **fields):
    posted = client.post("/", {"photo": upload(), **fields})
    assert posted.status_code == 303, posted.content
    return posted["Location"]


def token_of(link):
    return re.search(r"photo=([\w-]+)", link).group(1)


def alerts(response):
    """The page's alerts (notices and error lists), as plain text."""
    html = response.content.decode()
    found = re.findall(r'role="alert"[^>]*>(.*?)</(?:div|ul)>', html, re.DOTALL)
    return [" ".join(re.sub(r"<[^>]+>", "", text).split()) for text in found]


# --- a parameter given twice --------------------------------------------------------------------


@pytest.mark.parametrize(("query", "name"), [
    ("q=red&q=blue", "q"),
    ("q=red&page=1&page=2", "page"),
    ("q=red&change=in+red&method=pic2word&method=fusion", "method"),
    ("category=mug&category=cap", "category"),
    ("price_min=1&price_min=100", "price_min"),
    ("in_stock=on&in_stock=off", "in_stock"),
    ("page=1&page=2", "page"),
])
def test_a_parameter_given_twice_is_400_naming_it(client, shop, query, name):
    """The last one silently won: ``q=red&q=blue`` showed results for "blue" under a header search box of "blue"."""
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert alerts(response) == [f"Please check your search. The link gives “{name}” 2 times; give it once."]
    html = response.content.decode()
    assert 'data-grid="results"' not in html
    assert '<input type="search" name="q" value=""' in html  # neither of two searches is shown as the one asked


def test_a_photo_given_twice_is_400_and_neither_is_searched(client, shop):
    first, second = token_of(photo_link(client)), token_of(photo_link(client, change="in red"))
    response = client.get(f"/?photo={first}&photo={second}")
    assert response.status_code == 400
    assert alerts(response) == ["Please check your search. The link gives “photo” 2 times; give it once."]
    assert 'data-grid="results"' not in response.content.decode()
    assert client.get(f"/?photo={second}").status_code == 200  # each alone is searched


def test_a_method_given_twice_on_a_product_page_is_400_naming_it(client, shop):
    response = client.get(f"/product/{shop[0].pk}/?change=in+red&method=pic2word&method=fusion")
    assert response.status_code == 400
    assert "Please check your search. The link gives “method” 2 times; give it once." in alerts(response)
    assert 'data-grid="changed"' not in response.content.decode()


@pytest.mark.urls("tests.like_this_urls")
def test_a_host_shops_photo_page_refuses_a_page_given_twice(client, shop):
    posted = client.post("/shop/photo/", {"photo": upload()})
    assert posted.status_code == 303
    response = client.get(posted["Location"] + "&page=1&page=2")
    assert response.status_code == 400
    assert "The link gives “page” 2 times; give it once." in response.content.decode()
    assert client.get(posted["Location"] + "&page=1").status_code == 200


# --- bytes that are not text --------------------------------------------------------------------


@pytest.mark.parametrize(("url", "name"), [
    ("/?q=%FF", "q"),
    ("/?q=red&change=%ED%A0%80", "change"),  # a lone surrogate, as UTF-8 would spell it
    ("/?q=red%C3", "q"),  # cut in the middle of "é"
    ("/product/{pk}/?change=in+%FFred", "change"),
    ("/?page=%FF", "page"),
])
def test_a_parameter_that_is_not_utf8_is_400_naming_it(client, shop, url, name):
    """Django reads such bytes as U+FFFD: "�" was searched as if the shopper had typed it, 200 and results."""
    response = client.get(url.format(pk=shop[0].pk))
    assert response.status_code == 400
    assert (f"Please check your search. The link’s “{name}” is not text (its bytes are not UTF-8); type it again."
            in alerts(response))


def test_bytes_that_are_not_text_in_a_parameter_the_page_does_not_read_are_left_alone(client, shop):
    response = client.get("/?q=red&utm_source=%FF")
    assert response.status_code == 200 and len(grid_ids(response)) == len(shop)


# --- a link of many changes ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/?q=red&", "/product/{pk}/?"])
def test_a_link_of_hundreds_of_changes_is_refused_at_once(client, shop, path):
    """999 changes drew 999 "take it back" links of 999 changes each: 130 s of CPU for the words' page, 25 s for a
    product's. The page shows the first six changes (one more than allowed), each with its link."""
    url = path.format(pk=shop[0].pk) + "&".join(f"change=in+colour+{i}" for i in range(500))
    started = time.process_time()
    response = client.get(url)
    assert time.process_time() - started < 5
    assert response.status_code == 400
    assert "At most 5 changes in a row; remove one to add another." in response.content.decode()
    steps = re.findall(r'<li class="p2w-step"><a href="([^"]*)">([^<]*)</a>', response.content.decode())
    assert [text for _, text in steps] == [f"in colour {i}" for i in range(6)]


# --- uploads ------------------------------------------------------------------------------------


def test_two_photos_in_one_upload_are_400_and_nothing_is_kept(client, shop, media):
    """The last file silently won (without the page's script a phone sends the file input's and the camera's)."""
    response = client.post("/", {"photo": [upload(), upload(png((200, 20, 20)))]})
    assert response.status_code == 400
    assert "Send one photo at a time; this form sent 2." in response.content.decode()
    assert kept_files(media) == []


def test_a_change_sent_twice_with_a_photo_is_400_naming_it(client, shop, media):
    response = client.post("/", {"photo": upload(), "change": ["in red", "in blue"]})
    assert response.status_code == 400
    assert "The form sent “change” 2 times; send it once." in response.content.decode()
    assert kept_files(media) == []


def test_photo_uploads_count_in_the_anonymous_budget(client, shop, media, settings):
    """Uploads were not counted: one address could have photos decoded and kept without end, for everyone's disk."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "3/min"}
    for _ in range(3):
        assert client.post("/", {"photo": upload()}).status_code == 303
    over = client.post("/", {"photo": upload()})
    wait = re.search(r"Too many searches from your address; try again in (\d+) s\.", over.content.decode())
    # Retry-After was 30 whatever the wait the page said
    assert (over.status_code, over["Retry-After"]) == (429, wait.group(1)) and 1 <= int(wait.group(1)) <= 60
    assert len(kept_files(media)) == 3 * 2  # each with its preview; the fourth is not kept


@pytest.mark.parametrize("token", [None, "x" * 64])
def test_an_upload_without_its_csrf_cookie_or_token_is_refused_in_a_shoppers_words(shop, media, token):
    """It was Django's page ("CSRF verification failed. Request aborted.", then a paragraph for developers)."""
    client = Client(enforce_csrf_checks=True)
    if token:
        client.get("/")  # the page sets the cookie; the form sends another page's token
    response = client.post("/", {"photo": upload(), **({"csrfmiddlewaretoken": token} if token else {})})
    assert response.status_code == 403
    html = response.content.decode()
    assert "<h1>That form was not sent</h1>" in html
    assert ("It came without the shop’s cookie or security token: cookies may be off in this browser (the shop "
            "needs them to take a form, and to keep your photo for your browser only), the page may have been open "
            "for too long, or the form came from another site.") in html
    assert "Go back, reload the page and send it again." in html and 'href="/">Back to the shop</a>' in html
    assert kept_files(media) == []


def test_a_request_of_more_parameters_than_django_takes_is_400_in_a_shoppers_words(client, shop):
    """It was Django's bare "Bad Request (400)"."""
    response = Client().get("/?q=red&" + "&".join(f"change=in+red+{i}" for i in range(1001)))
    assert response.status_code == 400
    html = response.content.decode()
    assert "<h1>The shop could not read that request</h1>" in html
    assert "It holds more than the shop takes in one request (parameters, form fields or files)" in html
    assert 'value=""' in html  # the search box is empty: the request's parameters are not read again


# --- a kept photo gone from storage ---------------------------------------------------------------


def test_a_kept_photo_removed_from_storage_meanwhile_is_410_with_a_message(client, shop, media):
    """Pins what was right (no test said it): a photo swept by another process, or a storage cleared, is gone."""
    link = photo_link(client, change="in red")
    for name in kept_files(media):
        (media.parent / "uploads" / photos.FOLDER / name).unlink()
    response = client.get(link)
    assert response.status_code == 410
    assert ("Your photo is no longer kept: the shop keeps a limited number of photos of all shoppers at once. "
            "Upload it again to search with it.") in alerts(response)
    assert 'data-grid="results"' not in response.content.decode() and 'name="photo"' in response.content.decode()


def test_a_photo_let_go_for_newer_ones_says_so_to_its_own_browser(client, shop, media):
    """It said "photos are kept only for the browser that uploaded them" to the very browser that uploaded it."""
    links = [photo_link(client) for _ in range(photos.KEPT_PER_SESSION + 1)]
    response = client.get(links[0])
    assert response.status_code == 404
    assert alerts(response) == [f"Your photo is no longer kept: this browser keeps its {photos.KEPT_PER_SESSION} "
                                "latest photos. Upload it again to search with it."]
    other = Client().get(links[1])  # another browser is still told the photo is not its own
    assert other.status_code == 404 and "photos are kept only for the browser that uploaded them" in (
        other.content.decode())


def test_a_bad_filter_beside_a_photo_searches_nothing(client, shop, settings):
    """The page refused the filter (400, no results) and its photo box still ran the photo's search: a search's
    CPU and a share of the shopper's budget for nothing."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "2/min"}
    link = photo_link(client)  # one of the two
    for _ in range(2):
        refused = client.get(link + "&price_min=cheap")
        assert refused.status_code == 400 and "Min price: Enter a number." in alerts(refused)[-1]
    assert client.get(link).status_code == 200  # the second


# --- browsing: a page past the end ----------------------------------------------------------------


@pytest.mark.parametrize("page", ["0", "-1", "1e3", "9" * 30, "2"])
def test_a_browsing_page_that_does_not_exist_is_404_on_the_shops_page(client, db, media, page):
    """It was the 404 page's "The product may have been removed": a page number is no product, and the filters
    were lost. Now the shop's page says so, with a link to the first page that keeps the filters."""
    make_catalog()
    response = client.get(f"/?category=mug&page={page}")
    assert response.status_code == 404
    assert alerts(response) == [f"{NO_SUCH_PAGE} See the first page."]
    assert '<a href="/?category=mug">See the first page</a>' in response.content.decode()
    assert '<option value="mug" selected>Mug</option>' in response.content.decode()  # the filters are kept

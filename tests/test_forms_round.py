"""Three gaps of the shopper's and the merchant's pages, each closed and pinned here.

A change with nothing to change (no product, no photo) was dropped without a word; a merchant's
form field sent twice was read as its last value, silently; the demo's first page had two h2
before its h1 and product cards at h3 under no h2. The outline is read with the standard
library's HTML parser.
"""

import html
import re
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.contrib.auth import SESSION_KEY as USER_SESSION_KEY
from django.core.files.uploadedfile import SimpleUploadedFile

from p2w_search.merchant.access import SESSION_KEY
from p2w_search.models import ImportJob
from p2w_search.shopper.journey import NOTHING_TO_CHANGE
from shop_demo.storefront.views import NOT_A_PHOTO_PAGE
from tests import test_hostile_storefront as storefront_round
from tests.hostile import BLUE, HEADER, RED, row, zip_bytes
from tests.test_hostile_uploads import uploaded_files
from tests.test_storefront import grid_ids

NOTHING = f"Please check your search. {NOTHING_TO_CHANGE}"
shop, client, upload = storefront_round.shop, storefront_round.client, storefront_round.upload  # fixtures and a helper


def alerts(response):
    """The page's alerts (notices and error lists), as plain text."""
    found = re.findall(r'role="alert"[^>]*>(.*?)</(?:div|ul|p)>', response.content.decode(), re.DOTALL)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", text)).split()) for text in found]


def input_value(response, input_id):
    """The value attribute of the input ``input_id`` (None when the page has no such input)."""
    found = re.search(rf'<input [^>]*id="{input_id}"[^>]*>', response.content.decode())
    if found is None:
        return None
    value = re.search(r'value="([^"]*)"', found.group(0))
    return html.unescape(value.group(1)) if value else ""


def selected(response, select_id):
    found = re.search(rf'<select [^>]*id="{select_id}".*?</select>', response.content.decode(), re.DOTALL)
    return re.findall(r'<option value="([^"]+)" selected>', found.group(0))


def newest_ids(products):
    return [p.pk for p in sorted(products, key=lambda p: (p.created_at, p.pk), reverse=True)]


# --- 1. a change with nothing to change ----------------------------------------------------------------

@pytest.mark.parametrize(("query", "box", "method"), [
    ("change=in+red", "in red", "pic2word_plus_image"),
    ("q=&change=in+red", "in red", "pic2word_plus_image"),  # the header's box sent empty
    ("photo=&change=in+red", "in red", "pic2word_plus_image"),  # a photo field sent empty
    ("change=in+red&method=fusion&page=2", "in red", "fusion"),
    ("change=in+red&change=with+stripes", "in red , with stripes", "pic2word_plus_image"),
    ("method=pic2word", "", "pic2word"),  # a method alone: nothing to compose it with
])
def test_a_change_without_words_or_a_photo_on_the_first_page_is_400_saying_what_to_do(client, shop, query, box,
                                                                                          method):
    """It was a 200 with the newest products, as if no change had been asked: the shopper did not learn why."""
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert alerts(response) == [NOTHING]
    page = response.content.decode()
    assert "<h1>Nothing to change yet</h1>" in page
    assert input_value(response, "p2w-photo-change") == box  # the change stays, for the photo the shopper adds
    assert selected(response, "p2w-photo-method") == [method]
    assert grid_ids(response, "browse") == newest_ids(shop)  # a product to choose, under the same sentence
    assert 'data-grid="results"' not in page
    assert "Or choose a product to change" in page


def test_the_products_to_choose_keep_the_filters_and_the_filters_form_drops_the_change(client, shop):
    response = client.get("/?change=in+red&category=mug")
    assert response.status_code == 400
    assert grid_ids(response, "browse") == newest_ids([p for p in shop if p.category == "mug"])
    filters = re.search(r'<form id="filters".*?</form>', response.content.decode(), re.DOTALL).group(0)
    assert 'name="change"' not in filters and 'name="method"' not in filters  # applying filters browses


def test_a_change_with_words_or_a_photo_is_still_searched(client, shop):
    words = client.get("/?q=mug&change=in+red")
    assert words.status_code == 200 and grid_ids(words, "results")
    assert input_value(words, "p2w-photo-change") == ""  # the words' change is not the photo box's
    posted = client.post("/", {"photo": upload(), "change": "in red"})
    assert posted.status_code == 303
    photo = client.get(posted["Location"])
    assert photo.status_code == 200 and grid_ids(photo, "results")
    assert input_value(photo, "p2w-photo-change") == ""


@pytest.mark.urls("tests.like_this_urls")
def test_a_host_shops_photo_page_refuses_a_change_without_a_photo(client, shop):
    """The app's PhotoSearchView showed its upload box, 200, and nothing of the change."""
    response = client.get("/shop/photo/?change=in+green&method=pic2word")
    assert response.status_code == 400
    assert alerts(response) == [NOTHING]
    assert "No photo to change yet</h2>" in response.content.decode()
    assert input_value(response, "p2w-photo-change") == "in green"
    assert selected(response, "p2w-photo-method") == ["pic2word"]
    assert client.get("/shop/photo/").status_code == 200  # the page alone asks nothing
    assert client.get("/shop/photo/?page=1").status_code == 200


def test_a_method_without_a_change_on_a_product_page_is_400_asking_for_the_change(client, shop):
    """It was a 200 with the box's method back at the default: the method asked was dropped unsaid."""
    response = client.get(f"/product/{shop[0].pk}/?method=fusion")
    assert response.status_code == 400
    assert "Say what to change, e.g. “in red”." in alerts(response)
    assert selected(response, f"p2w-method-{shop[0].pk}") == ["fusion"]
    assert 'data-grid="changed"' not in response.content.decode()
    assert client.get(f"/product/{shop[0].pk}/").status_code == 200


def test_a_photos_link_on_a_product_page_is_400_and_changes_neither(client, shop):
    """It searched the product with the change: not the photo the link meant, and not a word of it."""
    posted = client.post("/", {"photo": upload()})
    token = re.search(r"photo=([\w-]+)", posted["Location"]).group(1)
    response = client.get(f"/product/{shop[0].pk}/?" + urlencode({"photo": token, "change": "in red"}))
    assert response.status_code == 400
    assert f"Please check your search. {NOT_A_PHOTO_PAGE}" in alerts(response)
    assert 'data-grid="changed"' not in response.content.decode()
    assert input_value(response, f"p2w-change-{shop[0].pk}") == "in red"  # the change stays in the box


def test_a_refused_link_on_a_product_page_keeps_the_change_in_the_box(client, shop):
    response = client.get(f"/product/{shop[0].pk}/?change=in+red&method=pic2word&method=fusion")
    assert response.status_code == 400
    assert input_value(response, f"p2w-change-{shop[0].pk}") == "in red"


# --- 2. a merchant's form field sent twice --------------------------------------------------------------

UPLOAD = "/merchant/upload/"
MANIFEST = HEADER + row("A-1")


def manifest_file(name="catalog.csv"):
    return SimpleUploadedFile(name, MANIFEST.encode())


def archive_file():
    return SimpleUploadedFile("images.zip", zip_bytes([("red.png", RED), ("blue.png", BLUE)]))


def page_text(response):
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", response.content.decode(), flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@pytest.mark.parametrize(("name", "fields"), [
    ("policy", {"policy": ["skip", "reject"]}),
    ("full_sync", {"full_sync": ["on", "on"]}),
    ("confirm_unlist", {"full_sync": "on", "confirm_unlist": ["1", "2"]}),
    ("manifest", {"manifest": [manifest_file(), manifest_file("other.csv")]}),
    ("archive", {"archive": [archive_file(), archive_file()]}),
])
def test_an_upload_field_sent_twice_is_400_naming_it_and_keeps_nothing(acme, client, media, name, fields):
    """``policy=skip&policy=reject`` made a job that rejected the whole upload: the last value, silently."""
    client.force_login(acme.user)
    response = client.post(UPLOAD, {"manifest": manifest_file(), "archive": archive_file(), **fields})
    assert response.status_code == 400
    reason = f"The form sent “{name}” 2 times; send it once."
    assert reason in page_text(response)
    assert re.search(r'<form[^>]*enctype="multipart/form-data"', response.content.decode())  # the form again
    assert not ImportJob.objects.exists()
    assert uploaded_files(media) == []


def test_several_image_files_are_still_one_upload(acme, client, media):
    client.force_login(acme.user)
    images = [SimpleUploadedFile("red.png", RED), SimpleUploadedFile("blue.png", BLUE)]
    response = client.post(UPLOAD, {"manifest": manifest_file(), "images": images})
    assert response.status_code == 302, page_text(response)
    assert ImportJob.objects.count() == 1


def test_the_upload_check_refuses_a_field_sent_twice(acme, client):
    client.force_login(acme.user)
    answer = client.post("/merchant/upload/check/", {"manifest": manifest_file(), "full_sync": ["true", "false"]})
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"full_sync": ["The form sent “full_sync” 2 times; send it once."]}
    assert answer.json()["full_sync"] is None
    two = client.post("/merchant/upload/check/", {"manifest": [manifest_file(), manifest_file("b.csv")]})
    assert (two.status_code, two.json()["errors"]) == (400, {
        "manifest": ["The form sent “manifest” 2 times; send it once."]})
    assert client.post("/merchant/upload/check/", {"manifest": manifest_file()}).status_code == 200


@pytest.mark.parametrize(("fields", "name"), [
    (lambda acme, rival: {"merchant": [acme.pk, rival.pk]}, "merchant"),
    (lambda acme, rival: {"merchant": rival.pk, "next": ["/merchant/imports/", "/merchant/upload/"]}, "next"),
])
def test_act_for_refuses_a_field_sent_twice_and_chooses_no_one(acme, rival, staff, client, fields, name):
    """``merchant=1&merchant=2`` acted for the second merchant, silently."""
    client.force_login(staff)
    response = client.post("/merchant/act-for/", fields(acme, rival))
    assert response.status_code == 400
    assert f"The form sent “{name}” 2 times; send it once." in page_text(response)
    assert SESSION_KEY not in client.session
    assert 'name="next" value=""' in response.content.decode() or name != "next"  # neither page is kept
    assert client.post("/merchant/act-for/", {"merchant": rival.pk})["Location"] == "/merchant/"


@pytest.mark.parametrize("name", ["username", "password", "next"])
def test_a_login_field_sent_twice_is_400_naming_it_and_tries_no_password(acme, client, settings, name):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "LOGIN_FAILURE_RATE": "1/hour"}
    fields = {"username": "acme", "password": "pw", "next": "/merchant/upload/"}
    twice = {**fields, name: [fields[name], fields[name] + "-other"]}
    for _ in range(3):  # refused before the count: not one failed login against the right password
        response = client.post("/merchant/login/", twice)
        assert response.status_code == 400
        assert f"The form sent “{name}” 2 times; send it once." in page_text(response)
        assert USER_SESSION_KEY not in client.session
    right = client.post("/merchant/login/", fields)
    assert (right.status_code, right["Location"]) == (302, "/merchant/upload/")


# --- 3. the pages' heading outline ----------------------------------------------------------------------

class Outline(HTMLParser):
    """The headings of a page, in order: [(level, text)]."""

    def __init__(self):
        super().__init__()
        self.headings, self._open = [], None

    def handle_starttag(self, tag, attrs):
        if re.fullmatch(r"h[1-6]", tag):
            self._open = [int(tag[1]), ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data

    def handle_endtag(self, tag):
        if self._open is not None and tag == f"h{self._open[0]}":
            self.headings.append((self._open[0], " ".join(self._open[1].split())))
            self._open = None


def outline(response):
    parser = Outline()
    parser.feed(response.content.decode())
    return parser.headings


def assert_well_outlined(headings):
    """One h1, first; no level skipped on the way down."""
    levels = [level for level, _ in headings]
    assert levels and levels[0] == 1 and levels.count(1) == 1, headings
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, headings


def test_the_first_page_starts_with_its_h1_and_skips_no_level(client, shop):
    """It was h2 "Search with your photo", h2 "Filters", h1 "New in", then each product at h3."""
    headings = outline(client.get("/"))
    assert headings == [(1, "New in"), *((2, p.title) for p in sorted(shop, key=lambda p: p.pk, reverse=True))]
    assert_well_outlined(headings)


def test_a_product_page_starts_with_its_h1_and_skips_no_level(client, shop):
    product = shop[0]
    plain = outline(client.get(f"/product/{product.pk}/"))
    assert plain[:2] == [(1, product.title), (2, "More like this")] and {level for level, _ in plain[2:]} == {3}
    assert_well_outlined(plain)
    changed = outline(client.get(f"/product/{product.pk}/?change=in+red"))
    assert changed[:2] == [(1, product.title), (2, "Like this, but “in red”")]
    assert_well_outlined(changed)


def test_a_photo_search_page_starts_with_its_h1_and_skips_no_level(client, shop):
    posted = client.post("/", {"photo": upload(), "change": "in red"})
    headings = outline(client.get(posted["Location"]))
    assert headings[0] == (1, "Like your photo, but “in red”") and len(headings) == 1 + len(shop)
    assert {level for level, _ in headings[1:]} == {2}
    assert_well_outlined(headings)


@pytest.mark.parametrize("query", ["q=mug", "q=mug&change=in+red", "change=in+red", "q=a&q=b", "price_min=x",
                                   "page=99"])
def test_the_first_pages_other_answers_skip_no_level(client, shop, query):
    assert_well_outlined(outline(client.get(f"/?{query}")))


@pytest.mark.urls("tests.like_this_urls")
def test_a_host_shops_photo_page_skips_no_level(client, shop):
    posted = client.post("/shop/photo/", {"photo": upload()})
    assert_well_outlined(outline(client.get(posted["Location"])))
    assert_well_outlined(outline(client.get("/shop/photo/?change=in+red")))

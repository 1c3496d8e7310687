"""Hostile input to the read side, fifth round: a 4xx that names the parameter and the reason, never a silently
different answer, and a budget spent only by searches.

Bytes that are not UTF-8 in a search's query string or form body (they were searched as "�"),
``format`` (DRF reads it: the API's own browsable page linked to ``?format=json``, which the
search refused as an unknown parameter, and ``?format=xml`` was a bare "Not found."), and
OPTIONS requests, which spent the anonymous search budget without searching.
"""

import re

import pytest
from django.test import Client

from p2w_search import photos
from tests import test_hostile_search as hostile_search
from tests.factories import png

TEXT = "/api/search/text/"
IMAGE = "/api/search/image/"
COMPOSED = "/api/search/composed/"
SIMILAR = "/api/search/similar/"
NOT_TEXT = "This value is not text: its bytes are not UTF-8. Send text as UTF-8 (percent-encoded in a query string)."
UNKNOWN_FORMAT = "Unknown format '{}'. The formats are: json, api."


# Fixtures: an APIClient that raises a view's exception instead of a 500; the solid colour shop.
client, shop = hostile_search.client, hostile_search.shop
ids = hostile_search.ids


def multipart(*fields, photo="image"):
    """A multipart body of ``(name, bytes)`` fields written byte for byte (a client's own encoding) and a photo in the
    field ``photo``, and its media type."""
    parts = [b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), value)
             for name, value in fields]
    photo = (b'--B\r\nContent-Disposition: form-data; name="%s"; filename="a.png"\r\nContent-Type: image/png'
             b'\r\n\r\n' % photo.encode() + png() + b'\r\n')
    return b"".join(parts) + photo + b"--B--\r\n", "multipart/form-data; boundary=B"


# --- bytes that are not UTF-8 -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "query", "name"), [
    (TEXT, "q=%FF", "q"),
    (TEXT, "q=red%C0%AF", "q"),  # an overlong "/"
    (TEXT, "q=red%ED%A0%80", "q"),  # a lone surrogate, as UTF-8 would spell it
    (TEXT, "q=red&category=mug%C3", "category"),  # cut in the middle of "é"
    (TEXT, "q=red&exclude=1,%FF", "exclude"),
    (SIMILAR, "product=%FF", "product"),
])
def test_a_query_parameter_whose_bytes_are_not_utf8_is_400_naming_it(client, shop, path, query, name):
    """Django reads such bytes as U+FFFD: ``q=%FF`` was a search for "�" (200 and results), ``category=mug%C3``
    a search of the category "mug�" (no results), and ``product=%FF`` said "'�' is not a product id"."""
    response = client.get(f"{path}?{query}")
    assert (response.status_code, response.json()) == (400, {name: [NOT_TEXT]})


def test_bytes_that_are_not_utf8_in_a_composed_searchs_query_string_are_400(client, shop):
    response = client.post(f"{COMPOSED}?category=%FF", {"product": shop[0].pk, "text": "in red"}, format="json")
    assert (response.status_code, response.json()) == (400, {"category": [NOT_TEXT]})


def test_a_search_whose_query_string_is_utf8_still_searches_it(client, shop):
    """``é`` percent-encoded as UTF-8, and a ``+`` for a space as ``%20`` is: the same search."""
    plus, encoded = client.get(f"{TEXT}?q=caf%C3%A9+red"), client.get(f"{TEXT}?q=caf%C3%A9%20red")
    assert plus.status_code == encoded.status_code == 200
    assert ids(plus) == ids(encoded) and len(ids(plus)) == 4


def test_a_form_body_whose_bytes_are_not_utf8_is_400_naming_the_field(client, shop):
    """``text=in+%FFred`` was composed as "in �red"."""
    response = client.post(COMPOSED, f"product={shop[0].pk}&text=in+%FFred",
                           content_type="application/x-www-form-urlencoded")
    assert (response.status_code, response.json()) == (400, {
        "detail": "Form parse error - the value of 'text' is not text: its bytes are not UTF-8."})


def test_a_multipart_field_whose_bytes_are_not_utf8_is_400_naming_it(client, shop):
    body, kind = multipart(("text", b"in \xffred"))
    response = client.post(COMPOSED, body, content_type=kind)
    assert (response.status_code, response.json()) == (400, {
        "detail": "Multipart form parse error - the value of 'text' is not text: its bytes are not UTF-8 (or it "
                  "holds U+FFFD, which stands for such bytes)."})


def test_a_form_body_in_utf8_is_still_searched(client, shop):
    body, kind = multipart(("text", "in rouge é".encode()))
    assert client.post(COMPOSED, body, content_type=kind).status_code == 200
    form = client.post(COMPOSED, f"product={shop[0].pk}&text=in+rouge+%C3%A9",
                       content_type="application/x-www-form-urlencoded")
    assert form.status_code == 200 and len(ids(form)) == 3


def test_the_shops_photo_box_refuses_a_change_whose_bytes_are_not_utf8(shop, media):
    """It kept the photo and answered 303 to a link searching "in �red"."""
    body, kind = multipart(("change", b"in \xffred"), photo="photo")
    response = Client(raise_request_exception=True).post("/", body, content_type=kind)
    assert response.status_code == 400
    assert ("This change holds “�” (U+FFFD), which stands for bytes that were not UTF-8; type it again."
            in response.content.decode())
    kept = media.parent / "uploads" / photos.FOLDER
    assert not kept.exists() or list(kept.iterdir()) == []


# --- format ----------------------------------------------------------------------------------------------------


def test_the_browsable_apis_own_json_link_answers_json(client, shop):
    """The search's HTML page (``Accept: text/html``) links to ``?format=json``, which was a 400 "Unknown
    parameter"."""
    page = client.get(f"{TEXT}?q=red", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    link = re.search(r'href="(/api/search/text/\?format=json[^"]*)"', page.content.decode()).group(1)
    response = client.get(link.replace("&amp;", "&"))
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
    assert ids(response) == ids(client.get(f"{TEXT}?q=red")) and len(ids(response)) == 4


@pytest.mark.parametrize("request_of", [
    lambda client, shop: client.get(f"{TEXT}?q=red&format=xml"),
    lambda client, shop: client.get(f"{SIMILAR}?product={shop[0].pk}&format=xml"),
    lambda client, shop: client.post(f"{COMPOSED}?format=xml", {"product": shop[0].pk, "text": "in red"},
                                     format="json"),
    lambda client, shop: client.get("/api/products/?format=xml"),
    lambda client, shop: client.get(f"/api/products/{shop[0].pk}/?format=xml"),
])
def test_a_format_the_api_does_not_have_is_400_naming_format(client, shop, request_of):
    """It was a 404 ``{"detail": "Not found."}``: no word of which parameter or why."""
    response = request_of(client, shop)
    assert (response.status_code, response.json()) == (400, {"format": [UNKNOWN_FORMAT.format("xml")]})


def test_a_format_suffix_the_api_does_not_have_is_404_naming_it(client, shop):
    response = client.get(f"/api/products/{shop[0].pk}.xml")
    assert (response.status_code, response.json()) == (404, {
        "detail": "There is no 'xml' format of this resource. The formats are: json, api."})
    assert client.get(f"/api/products/{shop[0].pk}.json").json()["id"] == shop[0].pk


def test_the_formats_the_api_has_are_answered(client, shop):
    assert ids(client.get(f"{TEXT}?q=red&format=json")) == ids(client.get(f"{TEXT}?q=red"))
    page = client.get(f"{TEXT}?q=red&format=api")
    assert (page.status_code, page["Content-Type"]) == (200, "text/html; charset=utf-8")
    composed = client.post(f"{COMPOSED}?format=json", {"product": shop[0].pk, "text": "in red"}, format="json")
    assert composed.status_code == 200 and len(ids(composed)) == 3


def test_format_given_twice_or_in_the_body_is_400_naming_it(client, shop):
    twice = client.get(f"{TEXT}?q=red&format=api&format=json")  # DRF answers in the last
    assert (twice.status_code, twice.json()) == (400, {"format": ["Give format once; it was given 2 times."]})
    body = client.post(COMPOSED, {"product": shop[0].pk, "text": "in red", "format": "json"}, format="json")
    assert (body.status_code, body.json()) == (400, {"format": [
        "Send format in the query string (?format=...), not in the body: filters and pages are read from the query "
        "string only."]})


# --- OPTIONS and the anonymous budget -------------------------------------------------------------------------


def test_options_requests_do_not_spend_the_anonymous_search_budget(client, shop, settings):
    """Each OPTIONS (a browser's CORS preflight asks one before each JSON search) counted as a search: the third
    of a 2/min budget was a 429, and so was the shopper's first search after them."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "2/min"}
    for path in (TEXT, COMPOSED, TEXT):
        assert client.options(path).status_code == 200
    assert [client.get(f"{TEXT}?q=red").status_code for _ in range(3)] == [200, 200, 429]

"""Hostile input to the searches: each is a 4xx that names the field and the reason, never a 500.

A change that the tokenizer reads as a ``*``, a TIFF that makes Pillow raise TypeError, JSON
nested too deeply, more files or fields than Django takes, filters in a POST's body, and page
numbers that are not pages. The API's clients raise a view's exception, as a 500 would be.
"""

import io
import json
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from django.test import Client
from PIL import Image
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from p2w_search import composition, encoding
from p2w_search.api.parsers import MultiPartParser
from p2w_search.composition import STAR_IN_CHANGE, as_tokenized, check_change
from p2w_search.models import EmbeddingModel
from tests.factories import (
    MerchantFactory,
    ProductFactory,
    ProductImageFactory,
    png,
    solid_colour_shop,
    uploaded,
)

# Tokenized, each of these is a '*': an entity (unescaped twice, so "&amp;ast;" too) or a fullwidth form.
STARS = ["in &ast; red", "in &#42; red", "in &#x2a; red", "in &amp;ast; red", "in ＊ red", "＊"]
# Stars to a reader, not to the tokenizer: searched as any other word.
NOT_STARS = ["in ﹡ red", "in ∗ red", "in &lt; red"]
TEXT = "/api/search/text/"
IMAGE = "/api/search/image/"
COMPOSED = "/api/search/composed/"


@pytest.fixture
def client():
    return APIClient(raise_request_exception=True)


@pytest.fixture
def shop(db, media):
    return solid_colour_shop()


def ids(response):
    """The product ids of a search's answer, in order."""
    return [hit["product"]["id"] for hit in response.json()["results"]]


def tiff_with_text_strip_offsets():
    """A 4x4 greyscale TIFF whose StripOffsets tag (273) is typed ASCII instead of LONG: Pillow raises TypeError."""
    pixels = b"\x80" * 16
    entries = [(256, 3, 1, 4), (257, 3, 1, 4), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 2, 1, ord("A")), (278, 3, 1, 4), (279, 4, 1, 16)]
    out = b"II*\x00" + struct.pack("<I", 8 + len(pixels)) + pixels + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        out += struct.pack("<HHII", tag, kind, count, value)
    return out + b"\x00\x00\x00\x00"


# --- a change the tokenizer reads as '*' ---------------------------------------------------------


@pytest.mark.parametrize("text", STARS)
def test_a_change_the_tokenizer_reads_as_a_star_is_refused_as_a_star_is(client, shop, text):
    with pytest.raises(ValueError, match="without '\\*'"):  # by the check, before any encoding
        check_change(text)
    response = client.post(COMPOSED, {"product": shop[0].pk, "text": text}, format="json")
    assert response.status_code == 400
    assert response.json() == {"text": [STAR_IN_CHANGE]}


def test_a_star_spelled_as_an_entity_is_refused_with_an_uploaded_reference_too(client, shop):
    response = client.post(COMPOSED, {"image": uploaded(png()), "text": "in &ast; red"}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"text": [STAR_IN_CHANGE]}


def test_only_what_the_tokenizer_reads_as_a_star_is_refused(client, shop):
    def status(text):
        return client.post(COMPOSED, {"product": shop[0].pk, "text": text}, format="json").status_code

    assert [status(text) for text in NOT_STARS] == [200] * len(NOT_STARS)
    assert status("in &amp;amp;ast; red") == 400  # ftfy unescapes too, before the tokenizer's two rounds


@pytest.mark.parametrize("text", ["in &ast; red", "  in\u3000＊\tred ", "&amp;amp;ast;", "<b>&ast;</b>", *NOT_STARS])
def test_a_change_is_checked_as_the_tokenizer_reads_it(text):
    from open_clip.tokenizer import _clean_whitespace  # what SimpleTokenizer.encode runs, before lower()

    assert as_tokenized(text) == _clean_whitespace(text)


@pytest.mark.parametrize("text", STARS)
def test_without_ftfy_the_check_still_finds_the_star(monkeypatch, text):
    """A web process without the models extra has no ftfy: the check cleans more, never less."""
    monkeypatch.setattr(composition, "_ftfy_fix_text", lambda: None)
    with pytest.raises(ValueError, match="without '\\*'"):
        check_change(text)
    for other in NOT_STARS:
        check_change(other)


@pytest.mark.parametrize("params", [{"change": "in &ast; red"}, {"change": "＊"}])
def test_the_product_page_answers_a_star_spelled_otherwise_with_400_and_the_reason(shop, params):
    response = Client(raise_request_exception=True).get(f"/product/{shop[0].pk}/", params)
    assert response.status_code == 400
    assert "Write the change in words, without &#x27;*&#x27;" in response.content.decode()


def test_the_shops_search_refined_by_a_star_entity_is_400_with_the_reason(shop):
    response = Client(raise_request_exception=True).get("/", {"q": "tee", "change": "&#42;"})
    assert response.status_code == 400
    assert "Write the change in words, without &#x27;*&#x27;" in response.content.decode()


def composed(shop, text, **payload):
    image_id = shop[0].p2w_images.get().pk
    return encoding.COMPOSED, {"text": text, "method": "pic2word", "template": None, "image_id": image_id,
                               **payload}


def test_one_query_of_a_batch_with_a_star_entity_is_refused_and_the_others_are_encoded(shop):
    model = EmbeddingModel.objects.get(state="serving")
    good = [(encoding.TEXT, "a red tee"), composed(shop, "in green"), composed(shop, "with stripes")]
    alone = [encoding.encode_many(model.pk, [query])[0] for query in good]

    outcomes = encoding.encode_many(model.pk, [good[0], good[1], composed(shop, "in &ast; red"), good[2]])

    assert isinstance(outcomes[2], encoding.QueryRejected)
    assert (outcomes[2].field, outcomes[2].reason) == ("text", STAR_IN_CHANGE)
    for outcome, expected in zip([outcomes[0], outcomes[1], outcomes[3]], alone):
        np.testing.assert_allclose(outcome, expected, atol=1e-5)


def test_a_change_that_breaks_the_prompt_fails_alone_in_its_batch(shop, monkeypatch):
    """A '*' the check does not see (another tokenizer's, say) breaks pic2word's prompt: only its query is refused."""
    monkeypatch.setattr(encoding, "check_change", lambda text: None)
    model = EmbeddingModel.objects.get(state="serving")
    good = [composed(shop, "in green"), composed(shop, "with stripes")]
    alone = [encoding.encode_many(model.pk, [query])[0] for query in good]

    outcomes = encoding.encode_many(model.pk, [good[0], composed(shop, "in &ast; red"), good[1]])

    assert isinstance(outcomes[1], encoding.QueryRejected)
    assert (outcomes[1].field, outcomes[1].reason) == ("text", STAR_IN_CHANGE)
    np.testing.assert_allclose(outcomes[0], alone[0], atol=1e-5)
    np.testing.assert_allclose(outcomes[2], alone[1], atol=1e-5)


def test_a_query_whose_encoding_fails_fails_alone_in_its_batch(shop, monkeypatch):
    """The exception is that query's outcome (its task raises it); the others of the batch get their vectors."""
    model = EmbeddingModel.objects.get(state="serving")
    original = composition.composed_queries

    def failing(embedder, *, texts, **kwargs):
        if "boom" in texts:
            raise RuntimeError("boom")
        return original(embedder, texts=texts, **kwargs)

    monkeypatch.setattr(encoding, "composed_queries", failing)
    outcomes = encoding.encode_many(model.pk, [composed(shop, "in green"), composed(shop, "boom")])
    assert isinstance(outcomes[0], list) and len(outcomes[0]) == model.dimensions
    assert isinstance(outcomes[1], RuntimeError) and str(outcomes[1]) == "boom"
    with pytest.raises(RuntimeError, match="boom"):
        encoding.encode_locally(model.pk, *composed(shop, "boom"))


def test_the_query_workers_batcher_raises_a_failure_only_in_its_own_query(monkeypatch):
    """Queries waiting together are encoded in one batch; the one that failed raises, the others are answered."""
    started = threading.Event()

    def encode_many(model_id, queries):
        if queries[0][1] == "first":  # holds the batcher while the others arrive, so that they make one batch
            started.set()
            time.sleep(0.3)
        return [RuntimeError("boom") if payload == "bad" else
                encoding.QueryRejected("q", "refused") if payload == "refused" else [1.0, 0.0]
                for _, payload in queries]

    monkeypatch.setattr(encoding, "encode_many", encode_many)
    batcher = encoding.QueryBatcher(8)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.encode, 1, encoding.TEXT, "first")
        started.wait(5)
        good, bad, refused = (pool.submit(batcher.encode, 1, encoding.TEXT, text)
                              for text in ("good", "bad", "refused"))
        assert first.result(5)["vector"] == [1.0, 0.0]
        assert good.result(5)["vector"] == [1.0, 0.0] and good.result()["batch"] == 3
        assert refused.result(5) == {"field": "q", "reason": "refused"}
        with pytest.raises(RuntimeError, match="boom"):
            bad.result(5)


# --- a TIFF that makes Pillow raise TypeError ----------------------------------------------------


@pytest.mark.parametrize(("path", "fields"), [(IMAGE, {}), (COMPOSED, {"text": "in red"})])
def test_a_tiff_with_a_mistyped_tag_is_not_a_readable_image(client, shop, path, fields):
    data = tiff_with_text_strip_offsets()
    with pytest.raises(TypeError), Image.open(io.BytesIO(data)) as image:  # what decode_image let through
        image.load()
    response = client.post(path, {"image": uploaded(data, "a.tif"), **fields}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"image": ["The image cannot be used: image data is truncated or corrupt."]}


# --- JSON nested too deeply ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [IMAGE, COMPOSED])
@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_json_nested_too_deeply_is_a_parse_error(client, shop, path, body):
    response = client.post(path, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the JSON is nested too deeply."}


def test_the_demos_other_api_views_parse_with_the_apps_parsers(client, shop, django_user_model):
    """REST_FRAMEWORK's DEFAULT_PARSER_CLASSES: the products API (shop_demo.catalog) answers a deep body 400 too."""
    user = django_user_model.objects.create_user("alice")
    product = ProductFactory(merchant=MerchantFactory(slug="alice", user=user))
    client.force_authenticate(user)
    response = client.patch(f"/api/products/{product.pk}/", b"[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the JSON is nested too deeply."}


# --- more files or fields than a request takes ---------------------------------------------------


@pytest.mark.parametrize("count", [2, 101])
def test_a_search_takes_one_file(client, shop, count):
    files = [uploaded(png(size=(8, 8)), f"i{i}.png") for i in range(count)]
    response = client.post(IMAGE, {"image": files}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"detail": "Too many files in one request: this endpoint takes at most 1."}


def test_more_files_than_django_takes_is_a_parse_error_naming_the_setting(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    sent = APIRequestFactory().post("/", {"images": [uploaded(png(), f"{i}.png") for i in range(3)]},
                                    format="multipart")
    with pytest.raises(ParseError) as refused:
        Request(sent, parsers=[MultiPartParser()]).data
    assert str(refused.value.detail) == ("Too many files in one request: this site takes at most 2 (Django's "
                                         "DATA_UPLOAD_MAX_NUMBER_FILES).")


FIELDS = ("Too many fields (form fields and query parameters) in one request: this site takes at most 1000 "
          "(Django's DATA_UPLOAD_MAX_NUMBER_FIELDS).")


def test_more_form_fields_than_django_takes_is_a_parse_error_naming_the_setting(client, shop):
    body = "&".join(f"f{i}=1" for i in range(1001))
    response = client.post(IMAGE, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json() == {"detail": FIELDS}


def test_more_query_parameters_than_django_takes_is_a_400_naming_the_setting(client, shop):
    response = client.get(TEXT + "?q=red&" + "&".join(f"f{i}=1" for i in range(1001)))
    assert response.status_code == 400
    assert response.json() == {"detail": FIELDS}


# --- filters in a POST's body --------------------------------------------------------------------

IN_QUERY = "Send {0} in the query string (?{0}=...), not in the body: filters and pages are read from the query " \
           "string only."


def test_filters_in_the_body_of_a_composed_search_are_refused_naming_each(client, shop):
    response = client.post(COMPOSED, {"product": shop[0].pk, "text": "in red", "category": "no-such-category",
                                      "price_max": "0"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"category": [IN_QUERY.format("category")], "price_max": [IN_QUERY.format("price_max")]}
    in_query = client.post(COMPOSED + "?category=no-such-category", {"product": shop[0].pk, "text": "in red"},
                           format="json")
    assert in_query.status_code == 200 and in_query.json()["count"] == 0


@pytest.mark.parametrize(("fields", "name"), [({"category": "mug"}, "category"), ({"page": 2}, "page"),
                                              ({"page_size": 1}, "page_size"), ({"in_stock": "true"}, "in_stock")])
def test_a_filter_or_page_in_the_body_of_an_image_search_is_refused(client, shop, fields, name):
    image_id = shop[0].p2w_images.get().pk
    response = client.post(IMAGE, {"image_id": image_id, **fields}, format="json")
    assert response.status_code == 400
    assert response.json() == {name: [IN_QUERY.format(name)]}


def test_a_filter_in_a_multipart_body_is_refused(client, shop):
    response = client.post(IMAGE, {"image": uploaded(png()), "merchant": str(shop[0].merchant_id)}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"merchant": [IN_QUERY.format("merchant")]}


# --- page numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5"])
def test_a_page_that_is_not_a_whole_number_from_1_is_400_naming_page(client, shop, page):
    response = client.get(TEXT, {"q": "red", "page": page})
    assert response.status_code == 400
    assert response.json() == {"page": ["Enter a whole number of at least 1 or 'last'."]}


@pytest.mark.parametrize("size", ["0", "-5", "abc"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_400_naming_page_size(client, shop, size):
    response = client.get(TEXT, {"q": "red", "page_size": size})
    assert response.status_code == 400
    assert response.json() == {"page_size": ["Enter a whole number of at least 1."]}


def test_a_page_past_the_last_is_404_saying_how_many_pages_there_are(client, shop):
    response = client.get(TEXT, {"q": "red", "k": 3, "page_size": 2, "page": 3})
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no page 3: the results have 2 pages."}
    huge = client.get(TEXT, {"q": "red", "page": "9" * 30})
    assert huge.status_code == 404
    assert huge.json() == {"detail": f"There is no page {'9' * 30}: the results have 1 page."}
    last = client.get(TEXT, {"q": "red", "k": 3, "page_size": 2, "page": "last"})
    assert last.status_code == 200 and len(last.json()["results"]) == 1


def test_a_bad_page_of_a_composed_search_is_400_naming_page(client, shop):
    response = client.post(COMPOSED + "?page=0", {"product": shop[0].pk, "text": "in red"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"page": ["Enter a whole number of at least 1 or 'last'."]}


# --- a parameter given twice ---------------------------------------------------------------------


def test_a_parameter_given_twice_is_refused_naming_it(client, shop):
    response = client.get(TEXT, {"q": ["red", "blue"], "k": ["1", "2"], "page": ["1", "2"]})
    assert (response.status_code, response.json()) == (400, {
        "k": ["Give k once; it was given 2 times."], "page": ["Give page once; it was given 2 times."],
        "q": ["Give q once; it was given 2 times."]})
    response = client.post(COMPOSED + "?k=1&k=2", {"product": shop[0].pk, "text": "in red"}, format="json")
    assert (response.status_code, response.json()) == (400, {"k": ["Give k once; it was given 2 times."]})
    response = client.post(COMPOSED, {"product": shop[0].pk, "text": ["in red", "in blue"]}, format="multipart")
    assert (response.status_code, response.json()) == (400, {"text": ["Give text once; it was given 2 times."]})
    response = client.post(COMPOSED + "?k=1", {"product": shop[0].pk, "text": "in red", "k": 2}, format="json")
    assert (response.status_code, response.json()) == (400, {
        "k": ["Give k once: in the query string or in the body, not both."]})
    assert client.get(TEXT, {"q": "red", "k": "2"}).status_code == 200


# --- lone surrogates in a JSON body --------------------------------------------------------------


@pytest.mark.parametrize("path, body, where, code", [
    (COMPOSED, {"text": "in red", "method": "\udc00"}, "the value of 'method'", "DC00"),
    (COMPOSED, {"text": "in \ud800 red"}, "the value of 'text'", "D800"),
    (IMAGE, {"\udc00": 1}, "a key", "DC00"),
    (IMAGE, {"image_id": 1, "exclude": ["1", "\udfff"]}, "the value of 'exclude'", "DFFF"),
])
def test_a_lone_surrogate_in_a_json_body_is_a_parse_error_naming_where(client, shop, path, body, where, code):
    """Valid JSON, not text: an answer repeating it ("'\\udc00' is not a valid choice") could not be encoded (500)."""
    body = {"product": shop[0].pk, **body} if path == COMPOSED else body
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert (response.status_code, response.json()) == (400, {
        "detail": f"JSON parse error - {where} holds a lone surrogate (U+{code}), which is not text."})


def test_a_json_body_that_gives_a_key_twice_is_a_parse_error_naming_it(client, shop):
    """As a query parameter given twice is refused: which of the two is meant is unknown."""
    body = '{"product": %d, "text": "in red", "text": "in blue"}' % shop[0].pk
    response = client.post(COMPOSED, body, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {
        "detail": "JSON parse error - the key 'text' is given twice; give each key once."})
    nested = client.post(IMAGE, '{"image_id": 1, "exclude": [{"a": 1, "a": 2}]}', content_type="application/json")
    assert nested.json() == {"detail": "JSON parse error - the key 'a' is given twice; give each key once."}


def test_an_image_of_a_hidden_product_is_no_image_and_does_not_name_the_product(client, shop):
    hidden = ProductFactory(listed=False)
    image = ProductImageFactory(product=hidden, data=png((1, 2, 3)))
    refusal = {"image_id": [f"There is no product image with id {image.pk}."]}
    response = client.post(IMAGE, {"image_id": image.pk}, format="json")
    assert (response.status_code, response.json()) == (400, refusal)
    response = client.post(COMPOSED, {"image_id": image.pk, "text": "in red"}, format="json")
    assert (response.status_code, response.json()) == (400, refusal)

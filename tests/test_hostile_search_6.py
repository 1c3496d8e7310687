"""Hostile input to the read side, sixth round: a 400 that names the parameter and the reason, never a silently
different answer.

A ``page_size`` above the largest page was cut to it without a word (``?page=2&page_size=150``
answered results 101-200); whole numbers were read with Python's ``int()``, which also reads
``1_0`` as 10, ``٥`` (ARABIC-INDIC DIGIT FIVE) as 5 and ``1.0`` (DRF's and Django's fields) as 1,
and price bounds with ``Decimal()``, which reads ``1_0`` as 10 too (the storefront's browsing page and
price boxes read them so as well); and the storefront's search by words ignored a ``method`` it does
not know.
"""

import io

import pytest
from django.test import Client

from tests import test_hostile_search as hostile_search
from tests.factories import ProductFactory, png

TEXT = "/api/search/text/"
IMAGE = "/api/search/image/"
COMPOSED = "/api/search/composed/"
SIMILAR = "/api/search/similar/"
PRODUCTS = "/api/products/"
PAGE = "Enter a whole number of at least 1 or 'last'."
PAGE_SIZE = "Enter a whole number of at least 1."
COUNT = "A valid integer is required. Write it in the digits 0-9 only, e.g. 12."
KEY = ("A valid integer is required. Write it in the digits 0-9 only (a minus sign before them for a negative one), "
       "e.g. 12.")
FILTER_KEY = "Enter a number. An id is a whole number, e.g. 12."
NUMBER = "Enter a number."
BAD_METHOD = "Select a valid choice. bogus is not one of the available choices."
# Not whole numbers in ASCII digits: each one int() (or DRF's or Django's integer field) read as a number.
NOT_DIGITS = ["1_0", "\u0665", "1.0", " 5", "5\n", "\uff15", "0x5"]
NOT_COUNTS = [*NOT_DIGITS, "+5", "-5"]  # a count has no sign


# Fixtures: an APIClient that raises a view's exception instead of a 500; the solid colour shop.
client, shop = hostile_search.client, hostile_search.shop
ids = hostile_search.ids


# --- page_size above the largest page --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "size", "most"), [(TEXT + "?q=red", 101, 100), (TEXT + "?q=red", 150, 100),
                                                    (PRODUCTS + "?page=1", 201, 200)])
def test_a_page_size_above_the_largest_page_is_400_naming_page_size_and_the_largest(client, shop, path, size, most):
    """``?page=2&page_size=150`` answered results 101-200 (DRF cuts page_size to max_page_size without a word)."""
    response = client.get(f"{path}&page_size={size}")
    assert (response.status_code, response.json()) == (400, {
        "page_size": [f"Ensure this value is less than or equal to {most}."]})


def test_a_page_size_above_the_largest_page_of_a_composed_search_is_400(client, shop):
    response = client.post(f"{COMPOSED}?page_size=101", {"product": shop[0].pk, "text": "in red"}, format="json")
    assert (response.status_code, response.json()) == (400, {
        "page_size": ["Ensure this value is less than or equal to 100."]})


def test_the_largest_page_size_is_still_a_page(client, db):
    ProductFactory.create_batch(3)
    page = client.get(PRODUCTS, {"page_size": 200}).json()
    assert (page["count"], len(page["results"]), page["next"]) == (3, 3, None)
    first, second = (client.get(PRODUCTS, {"page_size": 2, "page": n}).json() for n in (1, 2))
    assert len(first["results"]) == 2 and len(second["results"]) == 1


def test_the_largest_page_size_of_a_search_is_still_a_page(client, shop):
    response = client.get(TEXT, {"q": "red", "k": 4, "page_size": 100})
    assert response.status_code == 200 and len(ids(response)) == 4


# --- whole numbers: ASCII digits only --------------------------------------------------------------------------


@pytest.mark.parametrize("value", NOT_DIGITS)
def test_an_id_or_count_in_other_digits_is_refused_by_the_one_reader(value):
    from p2w_search.api.parameters import whole_number

    with pytest.raises(ValueError):
        whole_number(value)
    with pytest.raises(ValueError):
        whole_number(value, signed=True)


def test_the_one_reader_takes_ascii_digits_a_sign_where_asked_and_json_integers():
    from p2w_search.api.parameters import whole_number

    assert [whole_number("12"), whole_number("007"), whole_number(12)] == [12, 7, 12]
    assert [whole_number("-12", signed=True), whole_number("+12", signed=True), whole_number(-3, signed=True)] == [
        -12, 12, -3]
    for value in ("-12", "+12", -3, 12.0, True, None, "", "9" * 5000):
        with pytest.raises(ValueError):
            whole_number(value)


@pytest.mark.parametrize("value", NOT_COUNTS)
def test_a_k_that_is_not_ascii_digits_is_400_naming_k(client, shop, value):
    """``k=1_0`` was 10 results, ``k=٥`` 5, ``k=5.0`` 5."""
    response = client.get(TEXT, {"q": "red", "k": value})
    assert (response.status_code, response.json()) == (400, {"k": [COUNT]})


@pytest.mark.parametrize("value", NOT_COUNTS)
def test_a_page_that_is_not_ascii_digits_is_400_naming_page(client, shop, value):
    """``page=1_0`` was page 10."""
    for path, query in ((TEXT, {"q": "red"}), (PRODUCTS, {})):
        response = client.get(path, {**query, "page": value})
        assert (response.status_code, response.json()) == (400, {"page": [PAGE]})


@pytest.mark.parametrize("value", NOT_COUNTS)
def test_a_page_size_that_is_not_ascii_digits_is_400_naming_page_size(client, shop, value):
    for path, query in ((TEXT, {"q": "red"}), (PRODUCTS, {})):
        response = client.get(path, {**query, "page_size": value})
        assert (response.status_code, response.json()) == (400, {"page_size": [PAGE_SIZE]})


@pytest.mark.parametrize("value", NOT_DIGITS)
def test_a_merchant_that_is_not_ascii_digits_is_400_naming_merchant(client, shop, value):
    """``merchant=1.0`` was merchant 1, ``merchant=1_0`` merchant 10."""
    response = client.get(TEXT, {"q": "red", "merchant": value})
    assert (response.status_code, response.json()) == (400, {"merchant": [FILTER_KEY]})
    listed = client.get(TEXT, {"q": "red", "merchant": f"{shop[0].merchant_id},{value}"})
    assert (listed.status_code, listed.json()) == (400, {"merchant": [FILTER_KEY]})


@pytest.mark.parametrize("value", NOT_DIGITS)
def test_a_product_that_is_not_ascii_digits_is_400_naming_product(client, shop, value):
    """``product=1_0`` was product 10, ``product=٥`` product 5."""
    response = client.get(SIMILAR, {"product": value})
    assert (response.status_code, response.json()) == (400, {"product": [f"{value!r} is not a product id."]})
    composed = client.post(COMPOSED, {"product": value, "text": "in red"}, format="json")
    assert (composed.status_code, composed.json()) == (400, {"product": [f"{value!r} is not a product id."]})


@pytest.mark.parametrize("value", NOT_DIGITS)
def test_the_search_services_product_id_reads_ascii_digits_only(db, value):
    """search.parse_product_id, which every door calls (the API, a shop's own views), read the key with the model
    field's int(); a shop whose views call it directly got product 10 for "1_0"."""
    from p2w_search.search import Rejected, parse_product_id

    with pytest.raises(Rejected) as refused:
        parse_product_id(value)
    assert str(refused.value.reason) == f"{value!r} is not a product id."
    assert parse_product_id("10") == parse_product_id(10) == 10


@pytest.mark.parametrize("path", ["1_0", "%D9%A5", "%EF%BC%95", "+5"])
def test_a_product_url_whose_id_is_not_ascii_digits_is_no_product(client, db, path):
    """``/api/products/1_0/`` matched the router's ``[^/.]+`` and answered product 10."""
    for _ in range(10):
        ProductFactory()
    response = client.get(f"{PRODUCTS}{path}/")
    assert response.status_code == 404


@pytest.mark.parametrize("value", ["1_0", "\u0665", "1.0", "\uff15", "0x5"])
def test_an_excluded_id_that_is_not_ascii_digits_is_400_naming_exclude(client, shop, value):
    """``exclude=1_0`` left product 10 out. (Spaces around an id are the CSV line's, as before.)"""
    response = client.get(TEXT, {"q": "red", "exclude": f"{shop[0].pk},{value}"})
    assert (response.status_code, response.json()) == (400, {
        "exclude": [f"{value!r} is not a product id. Give product ids separated by commas."]})


@pytest.mark.parametrize("value", [*NOT_DIGITS, 5.0, 1e3, True])
def test_an_image_id_that_is_not_ascii_digits_is_400_naming_image_id(client, shop, value):
    """``{"image_id": "1_0"}`` searched by image 10, ``{"image_id": 5.0}`` by image 5."""
    response = client.post(IMAGE, {"image_id": value}, format="json")
    assert (response.status_code, response.json()) == (400, {"image_id": [KEY]})


@pytest.mark.parametrize("value", [5.0, "5.0", True])
def test_a_k_in_a_json_body_is_a_json_integer_or_ascii_digits(client, shop, value):
    response = client.post(COMPOSED, {"product": shop[0].pk, "text": "in red", "k": value}, format="json")
    assert (response.status_code, response.json()) == (400, {"k": [COUNT]})


def test_whole_numbers_in_ascii_digits_still_search(client, shop):
    """The same numbers written plainly: a query string's digits, a JSON integer, a form's digits."""
    assert len(ids(client.get(TEXT, {"q": "red", "k": "3"}))) == 3
    assert ids(client.get(TEXT, {"q": "red", "k": "03"})) == ids(client.get(TEXT, {"q": "red", "k": "3"}))
    assert len(ids(client.post(COMPOSED, {"product": shop[0].pk, "text": "in red", "k": 2}, format="json"))) == 2
    assert len(ids(client.post(COMPOSED, {"product": str(shop[0].pk), "text": "in red", "k": "2"}))) == 2
    image = shop[1].p2w_images.get()
    by_image = client.post(IMAGE, {"image_id": image.pk}, format="json")
    assert by_image.status_code == 200 and shop[1].pk not in ids(by_image) and len(ids(by_image)) == 3
    assert client.post(IMAGE, {"image_id": str(image.pk)}).json() == by_image.json()
    mine = ids(client.get(TEXT, {"q": "red", "merchant": str(shop[0].merchant_id)}))
    assert mine == [shop[0].pk]
    assert ids(client.get(TEXT, {"q": "red", "merchant": "-5"})) == []  # a key no database row has: none
    similar = client.get(SIMILAR, {"product": str(shop[0].pk), "exclude": f"{shop[1].pk}, {shop[2].pk}"})
    assert ids(similar) == [shop[3].pk]
    assert client.get(TEXT, {"q": "red", "k": 3, "page_size": "2", "page": "2"}).json()["count"] == 3


@pytest.mark.parametrize("value", ["1_0", "\u0665", "\uff11\uff10", "1_000.5"])
def test_a_price_bound_that_is_not_ascii_digits_is_400_naming_it(client, shop, value):
    """``price_min=1_0`` was 10 (Python's Decimal reads underscores and other scripts' digits)."""
    response = client.get(TEXT, {"q": "red", "price_min": value})
    assert (response.status_code, response.json()) == (400, {"price_min": [NUMBER]})


def test_a_price_bound_written_plainly_still_filters(client, shop):
    """Prices are 10, 20, 30 and 40: a bound in digits, with decimals or a sign, or an exponent, as before."""
    def found(**bounds):
        response = client.get(TEXT, {"q": "red", **bounds})
        assert response.status_code == 200, response.content
        return sorted(ids(response))

    assert found(price_min="25", price_max="40.00") == sorted(p.pk for p in shop[2:])
    assert found(price_min="-1", price_max=".5e2") == sorted(p.pk for p in shop)
    assert found(price_max="1e1") == [shop[0].pk]


# --- method on the storefront ----------------------------------------------------------------------------------


def test_a_search_by_words_refuses_a_method_it_does_not_know(shop):
    """``/?q=red&method=bogus`` was a 200 that ignored the method, unlike the product and photo pages."""
    client = Client(raise_request_exception=True)
    response = client.get("/", {"q": "red", "method": "bogus"})
    assert response.status_code == 400
    assert BAD_METHOD in response.content.decode()
    assert 'data-product-id="' not in response.content.decode()  # searched nothing
    assert BAD_METHOD in client.get("/", {"q": "red", "change": "in blue", "method": "bogus"}).content.decode()


def test_a_search_by_words_takes_a_method_it_knows(shop):
    """Refine links keep the method a page ran with; the words alone are searched as before."""
    client = Client(raise_request_exception=True)
    plain, named = client.get("/", {"q": "red"}), client.get("/", {"q": "red", "method": "pic2word"})
    assert plain.status_code == named.status_code == 200
    assert client.get("/", {"q": "red", "method": ""}).status_code == 200
    found = [html.content.decode().count('data-product-id="') for html in (plain, named)]
    assert found[0] == found[1] > 0


def test_a_photo_search_refuses_a_method_it_does_not_know(shop):
    """A photo's results link with ``method=bogus`` and no change searched the photo and ignored the method."""
    client = Client(raise_request_exception=True)
    buffer = io.BytesIO(png((220, 20, 20)))
    buffer.name = "photo.png"
    posted = client.post("/", {"photo": buffer})
    assert posted.status_code == 303
    link = posted["Location"]
    assert client.get(link).status_code == 200
    response = client.get(link.replace("method=pic2word_plus_image", "method=bogus"))
    assert response.status_code == 400
    assert BAD_METHOD in response.content.decode()


# --- the storefront's own numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["0_1", "\u0661", "\uff11", " 1"])
def test_a_browsing_page_that_is_not_ascii_digits_is_no_page(db, media, page):
    """``/?page=0_1`` was page 1 (Django's paginator reads the number with int(): ``page=1_0`` was page 10)."""
    ProductFactory.create_batch(2)
    client = Client(raise_request_exception=True)
    assert client.get("/", {"page": "1"}).status_code == 200
    response = client.get("/", {"page": page})
    assert response.status_code == 404
    assert "There is no such page of products." in response.content.decode()


@pytest.mark.parametrize("value", ["1_3", "\u0661\u0663"])
def test_a_storefront_price_that_is_not_ascii_digits_is_400(shop, value):
    """``/?price_min=1_3`` filtered from 13."""
    client = Client(raise_request_exception=True)
    assert client.get("/", {"price_min": "13"}).status_code == 200
    response = client.get("/", {"price_min": value})
    assert response.status_code == 400
    assert "Min price: Enter a number." in response.content.decode()

"""The demo shop's product API: a merchant's writes are checked as an import row is, and
another merchant's unlisted products stay hidden to writes as they are to reads."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from shop_demo.catalog.models import Product
from shop_demo.catalog.serializers import ProductSerializer
from tests.factories import MerchantFactory, ProductFactory

DUPLICATE = {"sku": ["You already have a product with this sku."]}


@pytest.fixture
def merchant(db, django_user_model):
    return MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme", password="pw"))


@pytest.fixture
def api(merchant):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")
    return client


def test_a_sku_the_merchant_already_has_is_refused_on_create_update_and_replace(api, merchant):
    first = ProductFactory(merchant=merchant, sku="A-1", title="first")
    second = ProductFactory(merchant=merchant, sku="A-2", title="second")
    ProductFactory(merchant=MerchantFactory(slug="rival"), sku="R-1")
    new = {"sku": "A-2", "title": "new", "category": "mug", "price": "5.00"}

    assert api.post("/api/products/", new, format="json").json() == DUPLICATE
    response = api.patch(f"/api/products/{first.pk}/", {"sku": "A-2"}, format="json")
    assert (response.status_code, response.json()) == (400, DUPLICATE)
    assert api.put(f"/api/products/{first.pk}/", new, format="json").json() == DUPLICATE
    assert list(Product.objects.filter(merchant=merchant).values_list("sku", "title")) == [
        ("A-1", "first"), ("A-2", "second")]
    # Its own SKU again, and a SKU that only another merchant has, are fine.
    assert api.patch(f"/api/products/{second.pk}/", {"sku": "A-2", "title": "kept"}, format="json").status_code == 200
    assert api.patch(f"/api/products/{first.pk}/", {"sku": "R-1"}, format="json").json()["sku"] == "R-1"


@pytest.mark.parametrize("body, key", [
    ('{"sku": "A-1", "title": "mug", "category": "mug", "price": "5.00", "price": "500.00"}', "price"),
    ('{"sku": "A-1", "title": "mug", "category": "mug", "price": "5.00", "images": [], "sku": "A-2"}', "sku"),
])
def test_a_json_body_that_gives_a_key_twice_is_refused_naming_it(api, merchant, body, key):
    """Which value is meant is unknown (Python's parser keeps the last): refused, as an import row is."""
    response = api.post("/api/products/", body, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {
        "detail": f"JSON parse error - the key '{key}' is given twice; give each key once."})
    product = ProductFactory(merchant=merchant, sku="A-3", price="7.00")
    response = api.patch(f"/api/products/{product.pk}/", '{"price": "1.00", "price": "100.00"}',
                         content_type="application/json")
    assert response.status_code == 400 and "'price' is given twice" in response.json()["detail"]
    assert list(Product.objects.filter(merchant=merchant).values_list("sku", "price")) == [("A-3", 7)]


def test_a_sku_taken_between_the_check_and_the_write_is_refused_by_name(api, merchant, monkeypatch):
    """Two requests at once pass the check; the database's constraint refuses the second, named as the check would."""
    first = ProductFactory(merchant=merchant, sku="A-1")
    ProductFactory(merchant=merchant, sku="A-2")
    monkeypatch.setattr(ProductSerializer, "validate_sku", lambda self, sku: sku)
    response = api.patch(f"/api/products/{first.pk}/", {"sku": "A-2"}, format="json")
    assert (response.status_code, response.json()) == (400, DUPLICATE)
    response = api.post("/api/products/", {"sku": "A-1", "title": "t", "category": "mug", "price": "1"}, format="json")
    assert (response.status_code, response.json()) == (400, DUPLICATE)
    assert Product.objects.get(pk=first.pk).sku == "A-1"


@pytest.mark.parametrize("values, errors", [
    ({"price": "-1"}, {"price": ["Ensure this value is greater than or equal to 0."]}),
    # Python's Decimal reads these as 15, 1000 and 15: a typo would be another price.
    ({"price": "1_5"}, {"price": ["A valid number is required."]}),
    ({"price": "1e3"}, {"price": ["A valid number is required."]}),
    ({"price": "\u0661\u0665"}, {"price": ["A valid number is required."]}),
    ({"currency": "e"}, {"currency": ["Give a three-letter currency code, e.g. EUR."]}),
    ({"currency": "eur"}, {"currency": ["Give a three-letter currency code, e.g. EUR."]}),
])
def test_the_api_refuses_the_prices_and_currencies_an_import_refuses(api, merchant, values, errors):
    product = ProductFactory(merchant=merchant, sku="A-1")
    response = api.patch(f"/api/products/{product.pk}/", values, format="json")
    assert (response.status_code, response.json()) == (400, errors)
    response = api.post("/api/products/", {"sku": "A-9", "title": "t", "category": "mug", "price": "1", **values},
                        format="json")
    assert (response.status_code, response.json()) == (400, errors)
    product.refresh_from_db()
    assert (str(product.price), product.currency) == ("19.99", "EUR")


def test_another_merchants_unlisted_product_is_not_found_by_a_write_either(api, merchant):
    theirs = ProductFactory(merchant=MerchantFactory(slug="rival"), listed=False)
    mine = ProductFactory(merchant=merchant, listed=False)
    assert api.get(f"/api/products/{theirs.pk}/").status_code == 404
    for method in (api.patch, api.put, api.delete):
        assert method(f"/api/products/{theirs.pk}/", {"title": "x"}, format="json").status_code == 404
    assert api.patch(f"/api/products/{mine.pk}/", {"title": "renamed"}, format="json").status_code == 200
    assert Product.objects.get(pk=theirs.pk).title != "x"


@pytest.mark.parametrize("path", ["/api/products/", "/api/imports/"])
def test_every_list_answers_a_bad_page_in_the_requests_terms(api, merchant, path):
    ProductFactory(merchant=merchant)
    for page in ("0", "abc", "²", "9" * 5000):
        response = api.get(path, {"page": page})
        assert (response.status_code, response.json()) == (400, {"page": ["Enter a whole number of at least 1 or "
                                                                          "'last'."]})
    response = api.get(path, {"page": 3})
    assert (response.status_code, response.json()) == (404, {"detail": "There is no page 3: the results have 1 "
                                                                       "page."})
    assert api.get(path, {"page": "last"}).status_code == 200


def test_the_product_lists_page_size_must_be_a_whole_number(api, merchant):
    response = api.get("/api/products/", {"page_size": "abc"})
    assert (response.status_code, response.json()) == (400, {"page_size": ["Enter a whole number of at least 1."]})

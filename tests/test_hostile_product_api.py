"""The demo's product API under attack: another merchant, a shopper, staff, anonymous clients and hostile bodies.

"Anyone can read; only a merchant changes its own catalog" (README, "Who may do what"): a write
names the field it refuses and why, never answers 200 for what it left out, never a 500.
"""

import unicodedata
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db.models.signals import post_delete, post_save
from rest_framework.test import APIClient

from p2w_search.models import ImageEmbedding, ProductImage
from shop_demo.catalog.api import NOT_A_MERCHANT
from shop_demo.catalog.models import Product
from tests.factories import (
    MerchantFactory,
    ProductFactory,
    ProductImageFactory,
    embed_catalog,
    png,
    token_client,
)
from tests.test_concurrent_writes import (
    Writer,
    requesting,
    stop_at,
    wait_until_a_writer_waits_for_a_lock,
)

__all__ = ["stop_at"]  # a fixture of test_concurrent_writes, used here

WRITABLE = "category, currency, description, in_stock, price, sku, title"
NEW = {"sku": "A-9", "title": "New", "category": "mug", "price": "5.00"}


@pytest.fixture
def merchant(db, django_user_model):
    return MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme"))


@pytest.fixture
def api(merchant):
    return token_client(merchant.user)


@pytest.fixture
def mine(merchant):
    return ProductFactory(merchant=merchant, sku="A-1", title="Mine", price="7.00")


def stored(product):
    """What the database holds of ``product``, all of it that a write could touch."""
    return Product.objects.filter(pk=product.pk).values(
        "merchant__slug", "sku", "title", "description", "price", "currency", "listed", "created_at").get()


@pytest.mark.parametrize("values, errors", [
    ({"merchant": "rival"}, {"merchant": ["This field is read-only (a product stays in the catalog of the merchant "
                                          "that added it): this product's is 'acme'."]}),
    ({"id": 999}, {"id": ["This field is read-only (the shop gives each product its id): this product's is "
                          "{pk}."]}),
    ({"listed": False}, {"listed": [f"Unknown field; the fields a request may write are: {WRITABLE}."]}),
    ({"created_at": "2000-01-01T00:00:00Z"}, {"created_at": [f"Unknown field; the fields a request may write are: "
                                                             f"{WRITABLE}."]}),
    ({"title": "Renamed", "colour": "red"}, {"colour": [f"Unknown field; the fields a request may write are: "
                                                        f"{WRITABLE}."]}),
    ({"images": ["red.png"]}, {"images": [f"Unknown field; the fields a request may write are: {WRITABLE}."]}),
    ({"merchant": "rival", "price": "-1"}, {"merchant": ["This field is read-only (a product stays in the catalog "
                                                         "of the merchant that added it): this product's is 'acme'."],
                                            "price": ["Ensure this value is greater than or equal to 0."]}),
])
def test_a_field_a_request_may_not_write_is_refused_by_name_not_left_out(api, merchant, mine, values, errors):
    """They answered 200 and changed nothing: ``{"listed": false}`` left the product on the shop without a word."""
    MerchantFactory(slug="rival")
    errors = {key: [reason.replace("{pk}", str(mine.pk)) for reason in reasons] for key, reasons in errors.items()}
    before = stored(mine)
    for method, body in ((api.patch, values), (api.put, {**NEW, **values})):
        response = method(f"/api/products/{mine.pk}/", body, format="json")
        assert (response.status_code, response.json()) == (400, errors)
    assert stored(mine) == before
    if "id" not in values:
        response = api.post("/api/products/", {**NEW, **values}, format="json")
        new = {key: [reason.replace("this product's", "a new product's") for reason in reasons]
               for key, reasons in errors.items()}
        assert (response.status_code, response.json()) == (400, new)
    assert list(Product.objects.values_list("sku", flat=True)) == ["A-1"]


def test_a_put_or_post_of_a_product_as_a_get_shows_it_is_taken(api, merchant, mine):
    shown = api.get(f"/api/products/{mine.pk}/").json()
    response = api.put(f"/api/products/{mine.pk}/", {**shown, "title": "Renamed"}, format="json")
    assert (response.status_code, response.json()["title"]) == (200, "Renamed")
    response = api.post("/api/products/", {**NEW, "merchant": "acme"}, format="json")
    assert (response.status_code, response.json()["merchant"]) == (201, "acme")
    response = api.post("/api/products/", {**NEW, "sku": "A-10", "id": mine.pk}, format="json")
    assert (response.status_code, response.json()) == (400, {"id": ["This field is read-only (the shop gives each "
                                                                    "product its id)."]})
    assert Product.objects.get(pk=mine.pk).title == "Renamed"


@pytest.mark.parametrize("price", ["-0", "-0.00", -0.0])
def test_a_negative_zero_price_is_answered_as_it_is_stored(api, mine, price):
    """The answer said "-0.00" where the database keeps 0.00."""
    response = api.patch(f"/api/products/{mine.pk}/", {"price": price}, format="json")
    assert (response.status_code, response.json()["price"]) == (200, "0.00")
    assert api.get(f"/api/products/{mine.pk}/").json()["price"] == "0.00"


@pytest.mark.parametrize(("body", "answer"), [
    ('{"price": 1.00000000000000001}', (400, {"price": ["Ensure that there are no more than 10 digits in total."]})),
    ('{"price": 9.5}', (200, "9.50")),
    ('{"price": 1e3}', (200, "1000.00")),
])
def test_a_json_number_is_read_as_written_not_as_a_float(api, mine, body, answer):
    """1.00000000000000001 was read as the float 1.0 and stored as 1.00; the same as a string was refused."""
    response = api.generic("PATCH", f"/api/products/{mine.pk}/", body, content_type="application/json")
    got = response.json() if response.status_code == 400 else response.json()["price"]
    assert (response.status_code, got) == answer
    assert stored(mine)["price"] == (Decimal(answer[1]) if answer[0] == 200 else Decimal("7.00"))


def test_a_description_is_at_most_as_long_as_a_manifests_cell(api, mine):
    """3 MB of description was stored, and sent again in every list page and search result that showed it."""
    response = api.patch(f"/api/products/{mine.pk}/", {"description": "x" * 131_073}, format="json")
    assert (response.status_code, response.json()) == (400, {"description": [
        "Ensure this field has no more than 131072 characters."]})
    assert stored(mine)["description"] == ""
    assert api.patch(f"/api/products/{mine.pk}/", {"description": "x" * 131_072}, format="json").status_code == 200


def test_a_sku_that_reads_as_one_the_merchant_has_is_refused(api, merchant, mine):
    """``café`` composed and decomposed were two products that no one could tell apart by their SKU."""
    composed, decomposed = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    ProductFactory(merchant=merchant, sku=composed)
    ProductFactory(merchant=MerchantFactory(slug="rival"), sku=decomposed)  # another merchant's: no matter
    reason = {"sku": [f"You already have a product with a sku that reads the same, written in other Unicode code "
                      f"points ({composed!r}); give that one, or another sku."]}
    response = api.post("/api/products/", {**NEW, "sku": decomposed}, format="json")
    assert (response.status_code, response.json()) == (400, reason)
    response = api.patch(f"/api/products/{mine.pk}/", {"sku": decomposed}, format="json")
    assert (response.status_code, response.json()) == (400, reason)
    assert sorted(Product.objects.filter(merchant=merchant).values_list("sku", flat=True)) == ["A-1", composed]
    # SKUs differ by case, as an import compares them (as they are stored).
    assert api.post("/api/products/", {**NEW, "sku": "a-1"}, format="json").status_code == 201


@pytest.fixture
def others(db, django_user_model):
    """A shopper, staff who may add and change products, and a superuser: none sells for a merchant."""
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_product", "change_product",
                                                                         "delete_product"]))
    return [token_client(user) for user in (django_user_model.objects.create_user("shopper"), staff,
                                            django_user_model.objects.create_superuser("root"))]


def test_a_write_of_someone_who_sells_for_no_merchant_is_a_403_before_its_body_is_judged(merchant, mine, others):
    """A shopper's or staff's POST with a bad body was a 400 about its fields, a 403 once corrected."""
    hidden = ProductFactory(merchant=merchant, sku="A-2", listed=False)
    for client in others:
        for method, path in ((client.post, "/api/products/"), (client.patch, f"/api/products/{mine.pk}/"),
                             (client.put, f"/api/products/{hidden.pk}/"), (client.delete, f"/api/products/{mine.pk}/")):
            response = method(path, {"price": "-1"}, format="json")
            assert (response.status_code, response.json()) == (403, {"detail": NOT_A_MERCHANT}), path
    response = APIClient().post("/api/products/", {}, format="json")
    assert (response.status_code, response.json()) == (401, {"detail": "Authentication credentials were not "
                                                                       "provided."})
    assert Product.objects.count() == 2 and stored(mine)["price"] == 7


@pytest.mark.parametrize("path, query, errors", [
    ("/api/products/", {"ordering": "-price"}, {"ordering": ["Unknown parameter. The parameters are: format, page, "
                                                             "page_size."]}),
    ("/api/products/", {"merchant": "rival", "listed": "false"}, {
        "listed": ["Unknown parameter. The parameters are: format, page, page_size."],
        "merchant": ["Unknown parameter. The parameters are: format, page, page_size."]}),
    ("/api/products/", {"page": ["1", "2"]}, {"page": ["Give page once; it was given 2 times."]}),
    ("/api/products/{pk}/", {"page": "1"}, {"page": ["Unknown parameter. The parameters are: format."]}),
])
def test_a_query_parameter_the_product_api_does_not_read_is_refused(api, mine, path, query, errors):
    """They answered the whole catalog as if applied (``?listed=false``: the listed products), or the last page."""
    response = api.get(path.format(pk=mine.pk), query)
    assert (response.status_code, response.json()) == (400, errors)


def test_a_write_with_a_query_parameter_is_refused_and_writes_nothing(api, mine):
    response = api.patch(f"/api/products/{mine.pk}/?listed=false", {"title": "x"}, format="json")
    assert (response.status_code, response.json()) == (400, {"listed": ["Unknown parameter. The parameters are: "
                                                                        "format."]})
    assert stored(mine)["title"] == "Mine"


@pytest.mark.parametrize("method, data, expected", [
    ("patch", {"title": "Renamed"}, 404), ("put", NEW, 404), ("delete", None, 404)])
def test_a_write_that_read_the_product_before_a_delete_committed_is_a_404(stop_at, django_user_model, method, data,
                                                                          expected):
    """The write read the product, then waited for the delete's lock: its UPDATE found no row, a 500
    ("Save with update_fields did not affect any rows.")."""
    merchant = MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme"))
    product = ProductFactory(merchant=merchant, sku="A-1")
    stop = stop_at(post_delete, Product)
    delete = requesting(merchant, "delete", f"/api/products/{product.pk}/")
    stop.wait()  # deleted, not committed
    write = requesting(merchant, method, f"/api/products/{product.pk}/", data)
    wait_until_a_writer_waits_for_a_lock()
    stop.go()
    assert delete.result().status_code == 204
    response = write.result()
    assert (response.status_code, response.json()) == (expected, {"detail": "No Product matches the given query."})
    assert not Product.objects.exists()


def test_what_held_a_delete_waits_for_a_write_that_holds_the_product(stop_at, django_user_model):
    """Both end, one after the other: the edit is written, then the product deleted."""
    merchant = MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme"))
    product = ProductFactory(merchant=merchant, sku="A-1")
    stop = stop_at(post_save, Product)
    patch = requesting(merchant, "patch", f"/api/products/{product.pk}/", {"title": "Renamed"})
    stop.wait()  # written, not committed
    delete = Writer(lambda: token_client(merchant.user).delete(f"/api/products/{product.pk}/"))
    wait_until_a_writer_waits_for_a_lock()
    stop.go()
    assert (patch.result().status_code, delete.result().status_code) == (200, 204)
    assert not Product.objects.exists()


@pytest.mark.parametrize("values, errors", [
    ({"title": "a\x00b"}, {"title": ["Null characters are not allowed."]}),
    ({"price": "1e3"}, {"price": ["A valid number is required."]}),
    ({"price": "1.0000000000"}, {"price": ["Ensure that there are no more than 10 digits in total."]}),
    ({"price": "1.001"}, {"price": ["Ensure that there are no more than 2 decimal places."]}),
    ({"price": "100000000"}, {"price": ["Ensure that there are no more than 8 digits before the decimal point."]}),
    ({"price": True}, {"price": ["A valid number is required."]}),
    ({"price": None}, {"price": ["This field may not be null."]}),
    ({"sku": ""}, {"sku": ["This field may not be blank."]}),
    ({"sku": ["A-2"]}, {"sku": ["Not a valid string."]}),
    ({"currency": "E UR"}, {"currency": ["Give a three-letter currency code, e.g. EUR."]}),
])
def test_what_held_bad_values_are_400s_naming_the_field(api, mine, values, errors):
    before = stored(mine)
    response = api.patch(f"/api/products/{mine.pk}/", values, format="json")
    assert (response.status_code, response.json()) == (400, errors)
    assert stored(mine) == before


def test_what_held_methods_pages_and_other_merchants(api, merchant, mine):
    rival = MerchantFactory(slug="rival", user=type(merchant.user).objects.create_user("rival"))
    theirs, hidden = ProductFactory(merchant=rival, sku="R-1"), ProductFactory(merchant=rival, sku="R-2", listed=False)
    for method, path, allow in ((api.post, f"/api/products/{mine.pk}/", "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"),
                                (api.put, "/api/products/", "GET, POST, HEAD, OPTIONS"),
                                (api.delete, "/api/products/", "GET, POST, HEAD, OPTIONS")):
        response = method(path, {}, format="json")
        assert (response.status_code, response["Allow"]) == (405, allow)
    assert APIClient().head("/api/products/").status_code == 200
    assert api.get("/api/products/", {"page": 9}).status_code == 404
    response = api.patch(f"/api/products/{theirs.pk}/", {"title": "x"}, format="json")
    assert (response.status_code, response.json()) == (403, {"detail": "Only the merchant that sells this product "
                                                                       "may change it."})
    # Another merchant's unlisted product is answered as one that does not exist, OPTIONS included.
    for path in (f"/api/products/{hidden.pk}/", "/api/products/999999/"):
        assert api.delete(path).json() == {"detail": "No Product matches the given query."}
        assert "actions" not in api.options(path).json()
    assert "PUT" in api.options(f"/api/products/{mine.pk}/").json()["actions"]
    response = api.patch(f"/api/products/{mine.pk}/", {"currency": " USD ", "in_stock": "no", "price": 1e3},
                         format="json")
    assert (response.status_code, stored(mine)["currency"], str(stored(mine)["price"])) == (200, "USD", "1000.00")
    assert Product.objects.filter(merchant=rival).count() == 2


def test_what_held_a_deleted_product_takes_its_images_and_vectors_out_of_search(api, merchant, mine, media):
    """Images are not written through this API (an ``images`` key is refused above); a delete cascades to them."""
    other = ProductFactory(merchant=merchant, sku="A-2")
    for product, colour in ((mine, (220, 20, 20)), (other, (20, 20, 220))):
        ProductImageFactory(product=product, data=png(colour))
    embed_catalog()
    found = api.get("/api/search/text/", {"q": "red"}).json()["results"]
    assert sorted(hit["product"]["id"] for hit in found) == sorted([mine.pk, other.pk])
    assert api.delete(f"/api/products/{mine.pk}/").status_code == 204
    assert list(ProductImage.objects.values_list("product_id", flat=True)) == [other.pk]
    assert ImageEmbedding.objects.filter(image__product_id=mine.pk).count() == 0
    found = api.get("/api/search/text/", {"q": "red"}).json()["results"]
    assert [hit["product"]["id"] for hit in found] == [other.pk]
    response = api.get("/api/search/similar/", {"product": mine.pk})
    assert (response.status_code, response.json()) == (400, {"product": [f"There is no product with id {mine.pk}."]})

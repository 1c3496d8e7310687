"""The search filters on the test shop's data, each checked against the same question asked of the ORM.

A string-keyed brand (issue 20, item 3), a category tree through a many-to-many (a parent
finds its descendants' products), and price and stock on stock records through ``__``
paths. Every search returns all matching products (k is larger than the catalog), so its
set of ids must be the ORM's.
"""

from decimal import Decimal

import pytest
from django.db.models import Q

from tests.testshop.models import Product


def found(client, **params):
    response = client.get("/api/search/text/", {"q": "something for the home", "k": 50, **params})
    assert response.status_code == 200, response.content
    return sorted(row["product"]["id"] for row in response.json()["results"])


def orm(*conditions, **lookups):
    """The ids of the published products the ORM finds for the same question."""
    products = Product.objects.filter(published=True).filter(*conditions, **lookups).distinct()
    return sorted(str(pk) for pk in products.values_list("pk", flat=True))


@pytest.mark.parametrize("brands", ["acme", "north", "acme,north", "nobody"])
def test_brand_a_foreign_key_to_a_slug_keyed_model(client, catalog, brands):
    assert found(client, brand=brands) == orm(brand__in=brands.split(","))


def test_brand_repeated_is_any_of_them(client, catalog):
    response = client.get("/api/search/text/?q=lamp&k=50&brand=acme&brand=north")
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == len(orm())


@pytest.mark.parametrize("name", ["home", "lighting", "lamps", "textiles", "garden"])
def test_a_category_finds_the_products_of_its_descendants(client, catalog, name):
    category = catalog.categories[name]
    tree = [category.pk, *category.get_descendants().values_list("pk", flat=True)]

    assert found(client, category=category.pk) == orm(categories__in=tree)


def test_the_tree_is_really_followed(client, catalog):
    """Not only the category itself: home has no product of its own, yet finds five."""
    assert not catalog.categories["home"].products.exists()
    names = {"red lamp", "blue lamp", "green light", "yellow cushion", "white rug"}
    assert found(client, category=catalog.categories["home"].pk) == sorted(str(catalog[n].pk) for n in names)


def test_two_categories_find_either(client, catalog):
    lamps, garden = catalog.categories["lamps"], catalog.categories["garden"]
    assert found(client, category=f"{lamps.pk},{garden.pk}") == orm(categories__in=[lamps.pk, garden.pk])


@pytest.mark.parametrize("bounds", [{"price_min": "20"}, {"price_max": "30"}, {"price_min": "25", "price_max": "75"},
                                    {"price_max": "15.49"}, {"price_min": "1000"}])
def test_price_through_the_stock_records(client, catalog, bounds):
    lookups = {f"stockrecords__price__{'gte' if key.endswith('min') else 'lte'}": Decimal(value)
               for key, value in bounds.items()}
    assert found(client, **bounds) == orm(**lookups)


@pytest.mark.parametrize("bounds", [{"stock_min": "1"}, {"stock_max": "0"}, {"stock_min": "2", "stock_max": "7"}])
def test_stock_through_the_stock_records(client, catalog, bounds):
    lookups = {f"stockrecords__num_in_stock__{'gte' if key.endswith('min') else 'lte'}": int(value)
               for key, value in bounds.items()}
    assert found(client, **bounds) == orm(**lookups)


def test_filters_combine(client, catalog):
    lighting = catalog.categories["lighting"]
    tree = [lighting.pk, *lighting.get_descendants().values_list("pk", flat=True)]
    assert found(client, brand="acme", category=lighting.pk, stock_min="1") == orm(
        Q(categories__in=tree), brand="acme", stockrecords__num_in_stock__gte=1)


def test_both_bounds_of_a_range_hold_for_one_stock_record(client, catalog):
    assert found(client, price_min="65", price_max="75") == [str(catalog["green light"].pk)]  # its 70.00
    assert orm(stockrecords__price__gte=72, stockrecords__price__lte=75) == []
    assert found(client, price_min="72", price_max="75") == []


def test_price_and_stock_hold_for_one_stock_record(client, catalog):
    assert found(client, price_max="75", stock_min="0") == orm(stockrecords__price__lte=75)  # green light among them
    assert orm(stockrecords__price__lte=75, stockrecords__num_in_stock__gte=1) == orm(
        stockrecords__price__in=[Decimal("30.00"), Decimal("15.50"), Decimal("25.00")])
    assert found(client, price_max="75", stock_min="1") == orm(stockrecords__price__lte=75,
                                                                 stockrecords__num_in_stock__gte=1)


@pytest.mark.parametrize("params, field", [
    ({"category": "lamps"}, "category"),
    ({"category": "1e3"}, "category"),
    ({"price_min": "cheap"}, "price_min"),
    ({"stock_max": "1e-200000"}, "stock_max"),
    ({"colour": "red"}, "colour"),
])
def test_a_malformed_or_unknown_filter_is_a_400_naming_it(client, catalog, params, field):
    response = client.get("/api/search/text/", {"q": "lamp", **params})
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]


def test_an_unknown_parameter_lists_the_filters_of_this_shop(client, catalog):
    response = client.get("/api/search/text/", {"q": "lamp", "merchant": "acme"})
    assert response.status_code == 400
    message = response.json()["merchant"][0]
    for name in ("brand", "category", "price_min", "price_max", "stock_min", "stock_max", "exclude", "k"):
        assert name in message



def test_a_decimal_is_no_category_key(client, catalog):
    """home.pk + ".5" was read as a decimal, which the database adapter truncated to home's key."""
    response = client.get("/api/search/text/", {"q": "lamp", "category": f"{catalog.categories['home'].pk}.5"})
    assert response.status_code == 400, response.content
    assert response.json() == {"category": ["Enter a number. An id is a whole number, e.g. 12."]}


@pytest.mark.parametrize("value", ["99999999999999999999", "-99999999999999999999"])
def test_a_category_key_no_database_holds_finds_nothing(client, catalog, value):
    assert found(client, category=value) == []

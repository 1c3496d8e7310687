"""Filters on Oscar's data, configured in settings only, agree with Oscar's own queries.

The category tree (treebeard's descendants), prices and stock on
``StockRecord``, and variants (a parent's price and stock are its children's).
"""

import pytest
from django.db.models import Q
from rest_framework.test import APIClient

from tests.oscar_shop.tests.catalog import Category, Product, StockRecord, embed_here

RED, BLUE, GREEN, WHITE, YELLOW, BLACK, PINK = (
    (220, 20, 20), (20, 40, 220), (20, 200, 40), (245, 245, 245), (240, 220, 10), (10, 10, 10), (250, 120, 180))


@pytest.fixture
def catalog(shop):
    tree = shop.tree()
    products = {
        "red shirt": shop.product("Red shirt", category=tree["Shirts"], price=20, stock=5, colour=RED),
        "blue top": shop.product("Blue top", category=tree["Tops"], price=35, stock=0, colour=BLUE),
        "green dress": shop.product("Green dress", category=tree["Dresses"], price=60, stock=2, colour=GREEN),
        "mug": shop.product("Mug", category=tree["Mugs"], price=8, stock=10, colour=WHITE),
        "hidden shirt": shop.product("Hidden shirt", category=tree["Shirts"], price=20, stock=5, colour=BLACK,
                                     public=False),
        # Variants: the picture is the parent's, prices and stock are the children's.
        "polo": shop.product("Polo", category=tree["Shirts"], colour=YELLOW, structure=Product.PARENT),
        # Sold by two partners at two prices.
        "two prices": shop.product("Two prices", category=tree["Tops"], price=5, stock=1, colour=PINK),
    }
    shop.variant(products["polo"], "Polo S", price=15, stock=0)
    shop.variant(products["polo"], "Polo L", price=25, stock=3)
    shop.stock(products["two prices"], 30, 0)
    embed_here()
    return tree, products


def found(query):
    response = APIClient().get(f"/api/search/text/?q=a+photo&k=50&{query}")
    assert response.status_code == 200, response.content
    return {row["product"]["id"] for row in response.json()["results"]}


def shown(products):
    """Oscar's own notion of what a shopper browses (public, not a variant), as ids."""
    return set(Product.objects.browsable().filter(pk__in=products.values("pk")).values_list("pk", flat=True))


def descendants(category):
    """The category and every one below it, as Oscar's treebeard tree answers."""
    return Category.objects.get_descendants(category, include_self=True)


def with_records(records):
    """Products that have one of ``records`` (a StockRecord queryset), themselves or through a variant."""
    ids = records.values("product")
    return Product.objects.filter(Q(pk__in=ids) | Q(children__in=ids))


def test_no_filter_finds_every_public_product_and_no_hidden_one(catalog):
    _, products = catalog
    assert found("") == shown(Product.objects.all())
    assert products["hidden shirt"].pk not in found("")


@pytest.mark.parametrize("name", ["Clothing", "Tops", "Shirts", "Dresses", "Home", "Mugs"])
def test_a_category_finds_its_subcategories_as_oscar_browses_them(catalog, name):
    tree, _ = catalog
    category = tree[name]
    expected = shown(Product.objects.filter(categories__in=descendants(category)))
    assert expected  # every category of the tree has a public product below it
    assert found(f"category={category.pk}") == expected


def test_several_categories_are_any_of(catalog):
    tree, _ = catalog
    either = [*descendants(tree["Dresses"]), *descendants(tree["Mugs"])]
    assert found(f"category={tree['Dresses'].pk}&category={tree['Mugs'].pk}") == shown(
        Product.objects.filter(categories__in=either))


@pytest.mark.parametrize("query, records", [
    ("price_max=20", StockRecord.objects.filter(price__lte=20)),
    ("price_min=30", StockRecord.objects.filter(price__gte=30)),
    ("stock_min=1", StockRecord.objects.filter(num_in_stock__gte=1)),
    ("stock_max=0", StockRecord.objects.filter(num_in_stock__lte=0)),
])
def test_price_and_stock_follow_stock_records_and_variants(catalog, query, records):
    expected = shown(with_records(records))
    assert expected
    assert found(query) == expected


def test_a_variant_s_price_finds_its_parent(catalog):
    _, products = catalog
    assert products["polo"].pk in found("price_max=15")  # Polo S
    assert products["polo"].pk not in found("price_max=14")


@pytest.mark.parametrize("low, high", [(10, 20), (16, 24), (20, 20)])
def test_both_bounds_of_a_range_hold_for_one_stock_record(catalog, low, high):
    expected = shown(with_records(StockRecord.objects.filter(price__gte=low, price__lte=high)))
    assert found(f"price_min={low}&price_max={high}") == expected


def test_filters_combine_with_the_category_tree(catalog):
    tree, _ = catalog
    expected = shown(Product.objects.filter(categories__in=descendants(tree["Clothing"]))
                     & with_records(StockRecord.objects.filter(num_in_stock__gte=1)))
    assert found(f"category={tree['Clothing'].pk}&stock_min=1") == expected


@pytest.mark.parametrize("query, field, reason", [
    ("category=abc", "category", "Enter a number."),
    ("price_max=cheap", "price_max", "Enter a number."),
    ("price_max=1e-200000", "price_max", "between -10^15 and 10^15"),
    ("price_max=20&price_max=30", "price_max", "Give price_max once; it was given 2 times."),
    ("colour=red", "colour", ("Unknown parameter. The parameters are: category, exclude, format, k, page, "
                              "page_size, price_max, price_min, q, stock_max, stock_min.")),
])
def test_a_bad_filter_is_a_400_that_names_it(catalog, query, field, reason):
    response = APIClient().get(f"/api/search/text/?q=shirt&{query}")
    assert response.status_code == 400, response.content
    assert reason in " ".join(response.json()[field])

"""Filters whose path crosses a multi-valued relation: which related row a parameter's conditions must hold on.

A Saleor-shaped shop keeps prices on its variants' listings, one per sales channel, and stock per warehouse:
``{"price": "variants__channel_listings__price_amount"}`` matched a price in any channel, so ``price_min=100``
found shirts priced 10 in the shop's channel because their listing in another (PLN) was 100. A spec's ``where``
holds fixed lookups that the same row must meet, in the same ``filter()`` call. The shop's models are built here
in a registry of their own (``isolate_apps``) with real tables in the test's transaction, as
tests/test_fifth_shop.py does; the search API's own path is pinned on the demo's models.
"""

from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connection, models
from django.http import QueryDict
from django.test.utils import isolate_apps

from p2w_search import checks
from p2w_search.api.filters import product_filterset
from tests.test_api import client, ids, shop  # noqa: F401 (fixtures)

DEFAULT = "variants__channel_listings__channel__slug"

with isolate_apps("tests"):
    class ShopProduct(models.Model):
        name = models.CharField(max_length=32)
        listed = models.BooleanField(default=True)
        parent = models.ForeignKey("self", null=True, on_delete=models.CASCADE, related_name="children")

        class Meta:
            app_label = "tests"

    class Channel(models.Model):
        slug = models.SlugField()

        class Meta:
            app_label = "tests"

    class Variant(models.Model):
        product = models.ForeignKey(ShopProduct, on_delete=models.CASCADE, related_name="variants")

        class Meta:
            app_label = "tests"

    class Listing(models.Model):
        variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="channel_listings")
        channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
        price_amount = models.DecimalField(max_digits=12, decimal_places=3)

        class Meta:
            app_label = "tests"

    class Stock(models.Model):
        variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="stocks")
        warehouse = models.SlugField()
        quantity = models.IntegerField()

        class Meta:
            app_label = "tests"


@pytest.fixture
def saleor(db, settings, monkeypatch):
    """The shop's models as ``P2W_SEARCH_PRODUCT_MODEL``, with tables; returns a setter of ``FILTER_FIELDS``."""
    with connection.schema_editor() as editor:
        for model in (ShopProduct, Channel, Variant, Listing, Stock):
            editor.create_model(model)
    get_model = apps.get_model
    monkeypatch.setattr(apps, "get_model", lambda label, *args, **kwargs: (
        ShopProduct if label == "tests.ShopProduct" else get_model(label, *args, **kwargs)))
    settings.P2W_SEARCH_PRODUCT_MODEL = "tests.ShopProduct"

    def configure(*fields):
        settings.P2W_SEARCH = {**settings.P2W_SEARCH, "FILTER_FIELDS": list(fields)}

    return configure


def product(name, *variants, parent=None):
    """A product with ``variants``: each ``{"listings": {channel: price}, "stocks": {warehouse: quantity}}``."""
    made = ShopProduct.objects.create(name=name, parent=parent)
    for spec in variants:
        variant = Variant.objects.create(product=made)
        for slug, price in spec.get("listings", {}).items():
            channel, _ = Channel.objects.get_or_create(slug=slug)
            Listing.objects.create(variant=variant, channel=channel, price_amount=Decimal(price))
        for warehouse, quantity in spec.get("stocks", {}).items():
            Stock.objects.create(variant=variant, warehouse=warehouse, quantity=quantity)
    return made


def found(**params):
    """The names of the products the filters keep, as often as the FilterSet's queryset has each."""
    data = QueryDict(mutable=True)
    data.update(params)
    filterset = product_filterset()(data, queryset=ShopProduct.objects.all())
    assert filterset.is_valid(), filterset.errors
    return sorted(filterset.qs.values_list("name", flat=True))


def channel_price(path="variants__channel_listings__price_amount", channel="default-channel", where=DEFAULT):
    return {"path": path, "where": {where: channel}}


def test_a_price_in_another_channel_is_no_price_of_the_shop(saleor):
    """The reported case: shirts priced 10 and 11 in the shop's channel were found by ``price_min=100&price_max=101``
    through their PLN listings at 100 and 101."""
    product("a", {"listings": {"default-channel": "10", "pln": "100"}})
    product("b", {"listings": {"default-channel": "11", "pln": "101"}})
    product("c", {"listings": {"default-channel": "100.5", "pln": "400"}})
    saleor({"price": "variants__channel_listings__price_amount"})
    assert found(price_min="100", price_max="101") == ["a", "b", "c"]  # any channel: what the path says
    saleor({"price": channel_price()})
    assert found(price_min="100", price_max="101") == ["c"]
    assert found(price_max="11") == ["a", "b"]
    assert found(price_max="11", price_min="11") == ["b"]


def test_a_range_holds_on_one_listing(saleor):
    """``price_min`` and ``price_max`` are applied in one ``filter()`` call: one variant at 50 and another at 150
    are no price between 100 and 101, with a where or without; nor is a default-channel price of 50 with a PLN
    listing of 150 on the same variant."""
    product("two variants", {"listings": {"default-channel": "50"}}, {"listings": {"default-channel": "150"}})
    product("two channels", {"listings": {"default-channel": "50", "pln": "150"}})
    product("hit", {"listings": {"default-channel": "100"}}, {"listings": {"default-channel": "300"}})
    for spec in ("variants__channel_listings__price_amount", channel_price()):
        saleor({"price": spec})
        assert found(price_min="100", price_max="101") == ["hit"]


def test_a_product_is_kept_once_however_many_of_its_rows_match(saleor):
    """Two listings in the range (of two variants) made the FilterSet's queryset hold the product twice: a search
    takes its products by key, but a shop's listing with ``ProductFilterSet`` showed it twice."""
    product("many", {"listings": {"default-channel": "10", "pln": "10"}}, {"listings": {"default-channel": "10"}})
    saleor({"price": channel_price()})
    assert found(price_min="10", price_max="10") == ["many"]


def test_price_and_stock_hold_on_one_variant_each_with_its_where(saleor):
    """A price in the shop's channel and a stock in its warehouse: both of one variant (the variants join is
    shared), so a cheap variant out of stock and a stocked one that is dear make no match."""
    product("split", {"listings": {"default-channel": "10"}, "stocks": {"eu": 0, "us": 9}},
            {"listings": {"default-channel": "99", "pln": "10"}, "stocks": {"eu": 5}})
    product("one", {"listings": {"default-channel": "10"}, "stocks": {"eu": 5}})
    product("elsewhere", {"listings": {"default-channel": "10"}, "stocks": {"us": 5}})
    saleor({"price": channel_price()},
           {"stock": {"path": "variants__stocks__quantity", "where": {"variants__stocks__warehouse": "eu"}}})
    assert found(price_max="20", stock_min="1") == ["one"]
    assert found(stock_min="1") == ["one", "split"]
    assert found(price_max="20") == ["elsewhere", "one", "split"]


def test_several_paths_each_with_its_own_where(saleor):
    """A parent's price is its own variants' or its children's (Oscar's shape): each path carries its where."""
    parent = product("parent")
    product("child", {"listings": {"default-channel": "30", "pln": "300"}}, parent=parent)
    other = product("other parent", {"listings": {"pln": "300"}})
    product("other child", {"listings": {"default-channel": "300"}}, parent=other)
    saleor({"price": [channel_price(), channel_price("children__variants__channel_listings__price_amount",
                                                     where=f"children__{DEFAULT}")]})
    assert found(price_min="300", price_max="300") == ["other child", "other parent"]
    assert found(price_max="30") == ["child", "parent"]


def test_a_where_applies_to_relations_and_booleans_too(saleor):
    product("a", {"listings": {"default-channel": "10", "pln": "100"}})
    product("b", {"listings": {"pln": "100"}})
    saleor({"channel": {"path": "variants__channel_listings__channel__slug",
                        "where": {"variants__channel_listings__price_amount__lt": 50}}})
    assert found(channel="pln") == []
    assert found(channel="default-channel,pln") == ["a"]


@pytest.mark.parametrize("spec, reason", [
    ({"path": "variants__channel_listings__price_amount", "where": {"variants__channel_listings__chanel__slug": "x"}},
     "the where of 'price', {'variants__channel_listings__chanel__slug': 'x'}, cannot filter tests.ShopProduct: "
     "Unsupported lookup 'chanel__slug' for ManyToOneRel or join on the field not permitted."),
    ({"path": "variants__channel_listings__price_amount", "where": {"varients__channel_listings__channel": 1}},
     "the where of 'price', {'varients__channel_listings__channel': 1}, cannot filter tests.ShopProduct: Cannot "
     "resolve keyword 'varients' into field. Choices are: children, id, listed, name, parent, parent_id, variants"),
    ({"path": "variants__channel_listings__price_amount", "where": {"variants__channel_listings__price_amount": "x"}},
     "the where of 'price', {'variants__channel_listings__price_amount': 'x'}, cannot filter tests.ShopProduct: "
     "“x” value must be a decimal number."),
    ({"path": "variants__channel_listings__price_amount", "where": "default-channel"},
     "the where of 'price' must be a dict of field lookups, e.g. {'variants__channel_listings__channel__slug': "
     "'default-channel'}, not 'default-channel'."),
    ({"path": "variants__channel_listings__price_amount", "wehre": {DEFAULT: "default-channel"}},
     "the spec of 'price' has 'wehre', which is no key of a spec (its keys: path, descendants, where)."),
    ([{"path": "variants__channel_listings__price_amount", "descendants": True}],
     "the spec of 'price' has 'descendants', which is no key of a spec (its keys: path, where)."),
    ({"path": ["variants__channel_listings__price_amount", "children__variants__channel_listings__price_amount"],
      "where": {DEFAULT: "default-channel"}},
     "'price' has several paths and one where; give each path its own: [{'path': ..., 'where': {...}}, ...]."),
    ([], "the path of 'price' must be a '__' path, a list of them or a dict with 'path', not []."),
])
def test_a_where_the_model_cannot_take_is_E003(saleor, spec, reason):
    """A where that cannot be built failed every search that used the parameter (a 500); a typo in a key
    (``wehre``) dropped the channel without a word, which is the bug the where is there to prevent."""
    saleor({"price": spec})
    assert [(m.id, m.msg) for m in checks.check_settings()] == [
        ("p2w_search.E003", f"P2W_SEARCH['FILTER_FIELDS']: {reason}")]


def test_a_where_the_model_takes_passes_the_checks(saleor):
    saleor({"price": [channel_price(), channel_price("children__variants__channel_listings__price_amount",
                                                     where=f"children__{DEFAULT}")]},
           {"stock": {"path": "variants__stocks__quantity", "where": {"variants__stocks__warehouse__in": ["eu"]}}})
    assert checks.check_settings() == []


@pytest.fixture
def rivals(shop, settings):  # noqa: F811
    """The API's shop, sold by two merchants (red, green, blue; black, white, yellow), with ``mugs``: the prices of
    the merchant's mugs."""
    first, second = shop["red"].merchant, shop["black"].merchant
    for name, merchant in [("green", first), ("blue", first), ("white", second), ("yellow", second)]:
        shop[name].merchant = merchant
        shop[name].save()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "FILTER_FIELDS": [
        {"mugs": {"path": "merchant__products__price", "where": {"merchant__products__category": "mug"}}}]}
    return shop


def test_the_search_api_applies_the_where_and_shows_each_product_once(client, rivals, settings):  # noqa: F811
    """Through the API: each product of the first merchant matches through three of its products without the
    where, through its one mug (green, 20) with it, and is one result each time."""
    def search(**bounds):
        response = client.get("/api/search/text/", {"q": "a shirt", "k": 10, **bounds})
        assert response.status_code == 200, response.content
        return response.json()["count"], sorted(ids(response))

    first = sorted(rivals[name].pk for name in ("red", "green", "blue"))
    assert search(mugs_min="15", mugs_max="35") == (3, first)
    assert search(mugs_min="25", mugs_max="35") == (0, [])  # blue is 30, but a t-shirt
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "FILTER_FIELDS": [{"mugs": "merchant__products__price"}]}
    assert search(mugs_min="25", mugs_max="35") == (3, first)


def test_the_schema_types_a_range_with_a_where_as_numbers(client, rivals):  # noqa: F811
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/search/text/"]["get"]["parameters"]}
    assert parameters["mugs_min"] == parameters["mugs_max"] == {"type": "number"}

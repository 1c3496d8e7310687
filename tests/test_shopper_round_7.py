"""Three things a shopper or an API user met, each closed and pinned here.

The storefront's ``/?method=bogus`` said only that there was nothing to change, hiding that the
method is not one the shop has; the browsable API's filter form dropped the search it narrowed
(``q``, ``k``, ``page_size``) when submitted; and the storefront's footer named the model serving
when the page rendered, not the one that ranked the results shown when an admin switched models
in between.
"""

import html
import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import path
from django.utils.html import escape
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny

from p2w_search import encoding
from p2w_search.api.filters import product_filterset
from p2w_search.api.views import SearchPagination
from p2w_search.search import visible_products
from p2w_search.shopper.journey import NOTHING_TO_CHANGE
from tests import test_hostile_storefront as storefront_round
from tests import test_search_model_switch as model_switch
from tests.factories import png
from tests.test_forms_round import alerts
from tests.test_storefront import grid_ids

shop, client, upload = storefront_round.shop, storefront_round.client, storefront_round.upload  # fixtures and a helper
models = model_switch.models  # the solid-colour shop, its serving model and 'next' (complete, not serving yet)

# The method field's message, with the methods there are: the same on every page that reads a method.
BAD_METHOD = ("Select a valid choice. bogus is not one of the available choices. The methods are: "
              "pic2word_plus_image, pic2word, image_only, text_only, image_plus_text, fusion.")


# --- 1. an unknown method with nothing to change -----------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "method=bogus",
    "method=bogus&change=in+red",
    "method=bogus&category=mug",
    "q=&photo=&method=bogus",  # the header's box and the photo field sent empty
    "method=bogus&page=2",
])
def test_an_unknown_method_with_nothing_to_change_is_named_with_the_methods_there_are(client, shop, query):
    """``/?method=bogus`` said "There is nothing to change yet" and not a word of the method."""
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert alerts(response) == [f"Please check your search. {BAD_METHOD} {NOTHING_TO_CHANGE}"]
    page = response.content.decode()
    assert "<h1>Nothing to change yet</h1>" in page
    assert 'data-grid="results"' not in page  # searched nothing


def test_a_known_method_with_nothing_to_change_is_still_only_nothing_to_change(client, shop):
    response = client.get("/?method=fusion")
    assert (response.status_code, alerts(response)) == (400, [f"Please check your search. {NOTHING_TO_CHANGE}"])


@pytest.mark.parametrize(("query", "headline"), [("q=red&method=bogus", "Please check your search."),
                                                 ("q=red&change=in+blue&method=bogus",
                                                  "Please check the change you asked for.")])
def test_an_unknown_method_with_words_says_the_same_with_the_same_status(client, shop, query, headline):
    response = client.get(f"/?{query}")
    assert (response.status_code, alerts(response)) == (400, [f"{headline} {BAD_METHOD}"])


def test_an_unknown_method_on_a_product_or_a_photo_says_the_same_with_the_same_status(client, shop):
    product = client.get(f"/product/{shop[0].pk}/?change=in+red&method=bogus")
    assert product.status_code == 400
    assert alerts(product) == [BAD_METHOD, f"Please check the change you asked for. {BAD_METHOD}"]
    link = storefront_round.photo_link(client)
    photo = client.get(link.replace("method=pic2word_plus_image", "method=bogus"))
    assert (photo.status_code, alerts(photo)) == (400, [f"Please check your search. {BAD_METHOD}"])
    posted = client.post("/", {"photo": upload(), "method": "bogus"})
    assert posted.status_code == 400
    assert BAD_METHOD in alerts(posted)  # at the photo box's method


@pytest.mark.urls("tests.like_this_urls")
def test_a_host_shops_photo_page_names_an_unknown_method_too(client, shop):
    response = client.get("/shop/photo/?method=bogus&change=in+green")
    assert response.status_code == 400
    assert alerts(response) == [f"Please check your search. {BAD_METHOD} {NOTHING_TO_CHANGE}"]
    assert "No photo to change yet</h2>" in response.content.decode()


# --- 2. the browsable API's filter form keeps the search it narrows ----------------------------------------------

class _FilterForm(HTMLParser):
    """The browsable API's filter form (under "Field filters"): its hidden inputs and its other fields' names."""

    def __init__(self):
        super().__init__()
        self.inside, self.hidden, self.fields = False, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("method") == "get" and attrs.get("class") == "form":
            self.inside = True
        elif self.inside and tag in ("input", "select"):
            if attrs.get("type") == "hidden":
                self.hidden.append((attrs["name"], attrs["value"]))
            else:
                self.fields.append(attrs["name"])

    def handle_endtag(self, tag):
        self.inside = self.inside and tag != "form"


def filter_form(response):
    """(hidden inputs as (name, value), the filters' field names) of the page's filter form."""
    page = response.content.decode()
    assert page.count("<h2>Field filters</h2>") == 1
    parser = _FilterForm()
    parser.feed(page)
    return parser.hidden, parser.fields


FILTER_FIELDS = ["category", "price_min", "price_max", "in_stock", "merchant"]


def test_the_filter_form_of_a_search_by_words_carries_the_search(shop):
    """Submitting it sent the filters alone: ``q`` gone, the page was a 400 "This field is required"."""
    words = 'red "striped" <dress> & more'
    response = Client().get("/api/search/text/", {"q": words, "k": "5", "category": "mug", "page": "1",
                                                  "page_size": "2"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    hidden, fields = filter_form(response)
    # In the link's order; not the page (narrowing starts at the first page), not the filters (the form's own).
    assert hidden == [("q", words), ("k", "5"), ("page_size", "2")]
    assert fields == FILTER_FIELDS


def test_the_filter_form_of_more_like_this_carries_the_product(shop):
    response = Client().get(f"/api/search/similar/?product={shop[0].pk}&format=api&exclude={shop[1].pk}")
    assert response.status_code == 200
    assert filter_form(response)[0] == [("product", str(shop[0].pk)), ("format", "api"), ("exclude", str(shop[1].pk))]


def test_submitting_the_filter_form_narrows_the_same_search(shop):
    """What the form sends, its hidden inputs and a filter: the same words, within the filter."""
    hidden, _ = filter_form(Client().get("/api/search/text/", {"q": "red mug"}, HTTP_ACCEPT="text/html"))
    narrowed = Client().get("/api/search/text/", [*hidden, ("category", "mug")], HTTP_ACCEPT="application/json")
    assert narrowed.status_code == 200
    results = narrowed.json()["results"]
    assert results and {row["product"]["category"] for row in results} == {"mug"}


@pytest.mark.parametrize("path, data", [("/api/search/composed/", {"text": "in red"}), ("/api/search/image/", {})])
def test_a_search_that_takes_only_a_post_shows_no_filter_form(shop, path, data):
    """Its form was a GET to the same page: narrowing a search by product and words, or by a catalog image, was a 405
    "Method GET not allowed". Its filters still narrow it from the POST's query string."""
    data = {**data, "product": shop[0].pk} if "text" in data else {"image_id": shop[0].p2w_images.first().pk}
    response = Client().post(path + "?category=mug", data, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert "<h2>Field filters</h2>" not in response.content.decode()
    assert Client().get(path, HTTP_ACCEPT="text/html").status_code == 405  # what the form sent
    narrowed = Client().post(path + "?category=mug", data, HTTP_ACCEPT="application/json").json()["results"]
    assert narrowed and {row["product"]["category"] for row in narrowed} == {"mug"}


class _Ids(serializers.Serializer):
    id = serializers.IntegerField()


class HostProducts(ListAPIView):
    """A host shop's own list with the app's filters: it reads its pages, and ignores parameters it does not know."""

    permission_classes = [AllowAny]
    filter_backends = [DjangoFilterBackend]
    pagination_class = SearchPagination
    serializer_class = _Ids

    @property
    def filterset_class(self):
        return product_filterset()

    def get_queryset(self):
        return visible_products().order_by("pk")


urlpatterns = [path("host/products/", HostProducts.as_view())]


@pytest.mark.urls(__name__)
def test_a_parameter_the_view_does_not_read_is_not_carried(shop):
    """``q`` and ``sort`` mean nothing to this view: sent again, they would look applied."""
    response = Client().get("/host/products/?q=red&sort=price&category=mug&page_size=2", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert filter_form(response) == ([("page_size", "2")], FILTER_FIELDS)


def test_a_refused_search_shows_no_filter_form_to_carry_it(shop):
    response = Client().get("/api/search/text/?q=red&sort=price", HTTP_ACCEPT="text/html")
    assert response.status_code == 400
    assert "<h2>Field filters</h2>" not in response.content.decode()


# --- 3. the footer names the model that ranked the results shown -------------------------------------------------

def footer_model(response):
    """(title, text) of the footer's model, as plain text."""
    found = re.search(r'<span title="([^"]*)">(Models?: .*?)</span>', response.content.decode())
    return found.group(1), html.unescape(re.sub(r"<[^>]+>", "", found.group(2)))


SERVING = "The CLIP model that ranks searches"
RANKED = "The CLIP model that ranked these results"


def test_results_ranked_before_a_switch_name_the_model_that_ranked_them(db, models, monkeypatch):
    """The admin switches models while the search runs: the footer named the new one, which ranked nothing shown."""
    shop, old, new = models
    model_switch.after(monkeypatch, encoding, "encode_query", model_switch.switch(new))
    response = Client().get("/?q=red+shirt")
    assert response.status_code == 200 and len(grid_ids(response)) == 4
    assert footer_model(response) == (RANKED, f"Model: {old.key}")
    assert f"Model: <code>{escape(new)}</code>" not in response.content.decode()
    monkeypatch.undo()
    assert footer_model(Client().get("/?q=red+shirt")) == (RANKED, f"Model: {new.key}")  # the next search: the new one
    assert footer_model(Client().get("/")) == (SERVING, f"Model: {new.key}")  # browsing ranks nothing


def test_a_photos_results_name_the_model_that_ranked_them(db, models, monkeypatch):
    shop, old, new = models
    browser = Client()
    posted = browser.post("/", {"photo": upload(png((220, 20, 20)))})
    assert posted.status_code == 303
    model_switch.after(monkeypatch, encoding, "encode_query", model_switch.switch(new))
    response = browser.get(posted["Location"])
    assert response.status_code == 200 and grid_ids(response)
    assert footer_model(response) == (RANKED, f"Model: {old.key}")


def test_a_product_page_names_each_model_that_ranked_its_grids(db, models, monkeypatch):
    """"Like this, but" ranked under the old model, then "more like this" under the new one: both named, in order."""
    shop, old, new = models
    model_switch.after(monkeypatch, encoding, "encode_query", model_switch.switch(new))
    response = Client().get(f"/product/{shop[0].pk}/?change=in+red")
    assert response.status_code == 200
    assert grid_ids(response, "changed") and grid_ids(response, "similar")
    assert footer_model(response) == ("The CLIP models that ranked these results", f"Models: {old.key}, {new.key}")
    monkeypatch.undo()
    assert footer_model(Client().get(f"/product/{shop[0].pk}/")) == (RANKED, f"Model: {new.key}")


def test_pages_that_rank_nothing_name_the_serving_model(db, models):
    shop, old, new = models
    for page in ("/", "/?change=in+red", "/?q=red+shirt&price_min=x"):
        response = Client().get(page)
        assert footer_model(response) == (SERVING, f"Model: {old.key}"), page


def test_the_filter_forms_fields_leave_stock_open_and_name_the_price_bounds(shop):
    """The stock select had no blank choice, so every submit narrowed to ``in_stock=true``; the price bounds were
    labelled "[invalid name]" (django-filter cannot name a filter of several paths)."""
    page = Client().get("/api/search/text/", {"q": "red"}, HTTP_ACCEPT="text/html").content.decode()
    select = re.search(r'<select name="in_stock"[^>]*>(.*?)</select>', page, re.S)[1]
    assert re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select) == [
        ("", " selected", "any"), ("true", "", "true"), ("false", "", "false")]
    assert re.findall(r'<label for="id_price_(min|max)">([^<]*)</label>', page) == [
        ("min", "Price at least:"), ("max", "Price at most:")]
    # The merchant filter takes ids separated by commas: a number input (type="number") let a browser send one.
    assert re.findall(r'<input type="(\w+)" name="merchant"', page) == ["text"]
    # What a browser sends with the blank choice narrows nothing: as many results as without it.
    everything = Client().get("/api/search/text/", {"q": "red", "in_stock": ""}).json()["count"]
    assert everything == Client().get("/api/search/text/", {"q": "red"}).json()["count"] > 0

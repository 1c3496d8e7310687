"""The shop's URLs plus a probe that reads the database settings a request is left with after a search."""

from django.db import connection
from django.http import JsonResponse
from django.test import RequestFactory
from django.urls import path

from p2w_search import search
from p2w_search.api.views import TextSearchView
from tests.oscar_shop.myshop.urls import urlpatterns as shop_urls
from tests.oscar_shop.tests.catalog import Product

SETTINGS = ("enable_indexscan", "hnsw.ef_search", "hnsw.iterative_scan")


def _settings():
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(["current_setting(%s, true)"] * len(SETTINGS)), list(SETTINGS))
        return dict(zip(SETTINGS, cursor.fetchone()))


def probe(request):
    """Set ef_search for this request, search (through the API view or the service), then report the settings."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = 77")  # the request's own value, before the search
    category = request.GET["category"]
    if request.GET["door"] == "api":
        inner = RequestFactory().get("/api/search/text/", {"q": "shirt", "k": "20", "category": category})
        status, found = (response := TextSearchView.as_view()(inner)).status_code, len(response.data["results"])
    else:
        results = search.text("shirt", products=Product.objects.filter(categories=category), k=20)
        status, found = 200, len(results.hits)
    return JsonResponse({"status": status, "found": found, "atomic": connection.in_atomic_block, **_settings()})


urlpatterns = [path("probe/", probe), *shop_urls]

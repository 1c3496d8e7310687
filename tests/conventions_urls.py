"""The app mounted as a shop might mount it (tests/test_deploy_conventions.py): other prefixes than the demo's.

The storefront's photo search under ``shop/search/`` and a product page of the shop's own under ``shop/p/``,
the merchant pages under ``sellers/``, the search and upload API under ``api/v2/``.
"""

from django.contrib import admin
from django.http import HttpResponseForbidden
from django.urls import include, path

from p2w_search.shopper.views import PhotoSearchView
from tests.like_this_urls import product_page


def csrf_failure(request, reason=""):
    """The shop's CSRF failure page (the demo's extends its storefront, which these URLs do not have)."""
    return HttpResponseForbidden(reason)


urlpatterns = [
    path("shop/search/", PhotoSearchView.as_view(), name="photo-search"),
    path("shop/p/<int:pk>/", product_page, name="product"),
    path("sellers/", include("p2w_search.merchant.urls")),
    path("api/v2/", include("p2w_search.api.urls")),
    path("api/v2/", include("p2w_search.api.upload_urls")),
    path("backoffice/", admin.site.urls),
]

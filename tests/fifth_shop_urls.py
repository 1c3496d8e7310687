"""The app's pages mounted as a shop without trailing slashes mounts them (``APPEND_SLASH = False``).

Used by tests/test_fifth_shop_conventions.py.
"""

from django.urls import include, path

from p2w_search.shopper.views import PhotoSearchView
from tests.like_this_urls import product_page

urlpatterns = [
    path("shop/search", PhotoSearchView.as_view(), name="photo-search"),
    path("shop/p/<int:pk>", product_page, name="product"),
    path("sellers/", include("p2w_search.merchant.urls")),
    path("api/v2/", include("p2w_search.api.urls")),
]

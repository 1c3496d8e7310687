"""The search endpoints: ``path("api/", include("p2w_search.api.urls"))``.

Catalog uploads are a separate include (``p2w_search.api.upload_urls``), mounted only by
shops whose merchants upload catalogs.
"""

from django.urls import path

from p2w_search.api import views

app_name = "p2w_search"

urlpatterns = [
    path("search/text/", views.TextSearchView.as_view(), name="search-text"),
    path("search/image/", views.ImageSearchView.as_view(), name="search-image"),
    path("search/composed/", views.ComposedSearchView.as_view(), name="search-composed"),
    path("search/similar/", views.SimilarProductsView.as_view(), name="search-similar"),
]

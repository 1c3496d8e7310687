from django.urls import path

from p2w_search.api import imports, views

app_name = "p2w_search"

urlpatterns = [
    path("search/text/", views.TextSearchView.as_view(), name="search-text"),
    path("search/image/", views.ImageSearchView.as_view(), name="search-image"),
    path("search/composed/", views.ComposedSearchView.as_view(), name="search-composed"),
    path("imports/", imports.ImportListView.as_view(), name="import-list"),
    path("imports/<int:pk>/", imports.ImportDetailView.as_view(), name="import-detail"),
    path("search/similar/", views.SimilarProductsView.as_view(), name="search-similar"),
]

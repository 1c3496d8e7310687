"""The catalog upload endpoints: ``path("api/", include("p2w_search.api.upload_urls"))``.

They need ``P2W_SEARCH["IMPORT_SERIALIZER"]`` (system check p2w_search.E013).
"""

from django.urls import path

from p2w_search.api import uploads

app_name = "p2w_uploads"

urlpatterns = [
    path("imports/", uploads.ImportListView.as_view(), name="import-list"),
    path("imports/<int:pk>/", uploads.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<int:pk>/files/<str:name>/", uploads.ImportFileView.as_view(), name="import-file"),
]

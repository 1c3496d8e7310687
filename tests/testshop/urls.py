"""The test shop's URLs: the admin, the search API, the catalog uploads and the merchant pages, as documented."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.static import serve


def media(request, path):
    # MEDIA_ROOT read per request: a test's own media folder is served too.
    return serve(request, path, document_root=settings.MEDIA_ROOT)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("p2w_search.api.urls")),
    path("api/", include("p2w_search.api.upload_urls")),
    path("merchant/", include("p2w_search.merchant.urls")),
    path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", media),
]

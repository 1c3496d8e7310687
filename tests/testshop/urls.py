"""The test shop's URLs: the admin, the search API, the catalog uploads and the merchant pages, as documented,
and the shop's own product pages (with the app's ``{% like_this %}``) and image files."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.static import serve

from tests.testshop import pages
from tests.testshop.storage import URL_PREFIX, shop_image_storage


def media(request, path):
    # MEDIA_ROOT read per request: a test's own media folder is served too.
    return serve(request, path, document_root=settings.MEDIA_ROOT)


def shop_images(request, path):
    return serve(request, path, document_root=shop_image_storage().location)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("p2w_search.api.urls")),
    path("api/", include("p2w_search.api.upload_urls")),
    path("merchant/", include("p2w_search.merchant.urls")),
    path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", media),
    path(f"{URL_PREFIX.strip('/')}/<path:path>", shop_images),
    path("", include((pages.urlpatterns, "testshop"))),
]

from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from p2w_search.merchant.logins import limit_failed_logins
from shop_demo.catalog.api import ProductViewSet

router = DefaultRouter()
router.register("products", ProductViewSet)


def media(request, path):
    # The demo serves product images itself; a production setup lets the web server or a CDN do it.
    # MEDIA_ROOT is read per request, so a changed setting (tests) is served too.
    return serve(request, path, document_root=settings.MEDIA_ROOT)


urlpatterns = [
    path("", include("shop_demo.storefront.urls")),
    # The admin's login with the merchant login's limit on failed attempts (LOGIN_FAILURE_RATE); before
    # admin.site.urls, whose own login path is the same.
    path("admin/login/", limit_failed_logins(admin.site.login)),
    path("admin/", admin.site.urls),
    path("merchant/", include("p2w_search.merchant.urls")),  # the merchant pages (uploads, progress, catalog)
    path("api/", include("p2w_search.api.urls")),
    path("api/", include("p2w_search.api.upload_urls")),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", media),
    # Browsers ask every page's site for /favicon.ico: the shop's, the merchant pages' and the admin's.
    path("favicon.ico", RedirectView.as_view(url=static("storefront/favicon.svg"), permanent=True)),
]

handler404 = "shop_demo.errors.not_found"

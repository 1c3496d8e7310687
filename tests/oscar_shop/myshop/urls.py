"""The shop's URLs: Oscar's (as its docs show) and p2w-search's search API."""

from django.apps import apps
from django.contrib import admin
from django.urls import include, path

from tests.oscar_shop.myshop import views

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("p2w_search.api.urls")),  # p2w-search: /api/search/{text,image,similar,composed}/
    path("catalogue/<int:pk>/like-this/", views.like_this, name="like-this"),  # optional: a page of its own
    path("", include(apps.get_app_config("oscar").urls[0])),
]

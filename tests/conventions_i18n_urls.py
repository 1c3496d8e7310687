"""The app's pages inside ``i18n_patterns`` (``/fr/...``), as a shop in several languages mounts them."""

from django.conf.urls.i18n import i18n_patterns

from tests.conventions_urls import urlpatterns as plain

urlpatterns = i18n_patterns(*plain)

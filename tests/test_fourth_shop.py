"""What a fourth shop's conventions broke, beyond the demo's, tests/testshop's, Oscar's and the third shop's.

The shop these were found with (a scratch project, not kept): products keyed by text slugs with "/", "%",
"#", "?" and spaces, no category and no price; several pictures a product with an order and a "main" flag
(its own image model); the merchant a Store with an integer key of its own, a user a member of two;
``STORAGES["default"]`` a blob storage without ``path()`` whose URLs are on another host (as S3's are);
``TIME_ZONE = "Pacific/Kiritimati"`` with ``USE_TZ``, ``LANGUAGE_CODE = "de"`` with thousands grouped,
``ATOMIC_REQUESTS``, and the app's URLs under prefixes. Indexing, the workers, the search API, the photo
page, uploads (API and pages) and the admin's index page worked with them; what did not is pinned here, on
the demo's settings.
"""

from types import ModuleType

import pytest
from django.db import models
from django.urls import include, path

from p2w_search import checks, shop_images
from p2w_search.shopper.views import PhotoSearchView
from tests.factories import ProductFactory
from tests.test_third_shop import shop_image_model

NO_UPLOAD_STORAGE = {"default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
                     "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


class ShopPhotoSearch(PhotoSearchView):
    """A shop's own photo page, as the README suggests (a subclass with its template and products)."""


def urlconf(*patterns):
    """A shop's URLconf: the search API under a prefix, and ``patterns``."""
    module = ModuleType("fourth_shop_urls")
    module.urlpatterns = [path("shop/search/api/", include("p2w_search.api.urls")), *patterns]
    return module


def findings(settings, root_urlconf):
    settings.ROOT_URLCONF, settings.STORAGES = root_urlconf, NO_UPLOAD_STORAGE
    return [(message.id, message.msg) for message in checks.check_settings()]


def test_a_photo_page_without_the_storage_it_keeps_photos_in_is_E014(settings):
    """``PhotoSearchView`` keeps each photo in ``UPLOAD_STORAGE``; a shop that mounts it but takes no catalog
    uploads (the README's settings name no such storage) passed ``manage.py check``, and every photo a shopper
    sent was a 500 (P2WImproperlyConfigured from the photo's save)."""
    root = urlconf(path("shop/", include([path("photo/", ShopPhotoSearch.as_view(), name="photo-search")])))
    assert findings(settings, root) == [(
        "p2w_search.E014", "STORAGES has no 'p2w_uploads' storage (P2W_SEARCH['UPLOAD_STORAGE']), where the photo "
                           "search at /shop/photo/ (PhotoSearchView) keeps shoppers' photos: add one that is never "
                           "served publicly, e.g. a FileSystemStorage outside MEDIA_ROOT, or set "
                           "P2W_SEARCH['UPLOAD_STORAGE'] to the alias of one.")]


def test_a_shop_that_keeps_no_photos_and_takes_no_uploads_needs_no_upload_storage(settings):
    """The Oscar shop's case: the search API and ``{% like_this %}`` keep no file."""
    assert findings(settings, urlconf()) == []


@pytest.fixture
def flagged_photo(settings, monkeypatch):
    """The shop's picture model with an order and a "main" flag (``tests.ShopPhoto``), named in ``IMAGE_MODEL``."""
    model = shop_image_model(is_main=models.BooleanField(default=False))
    get_model = shop_images.apps.get_model
    monkeypatch.setattr(shop_images.apps, "get_model", lambda label, *args, **kwargs: (
        model if label == "tests.ShopPhoto" else get_model(label, *args, **kwargs)))
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": {
        "MODEL": "tests.ShopPhoto", "FILE": "picture", "ORDER": "rank", "MAIN": "is_main"}}
    return model


def test_a_flagged_main_picture_is_its_products_first_image_whatever_its_order(db, flagged_photo):
    """A product is searched by its first image ("more like this", "like this, but ..."). ``IMAGE_MODEL`` had only
    ``ORDER``, so a shop whose main picture is a flag searched by the picture of lowest order, one it does not
    show first; ``MAIN`` names the flag."""
    product = ProductFactory()
    cfg = shop_images.config()
    pictures = [flagged_photo(pk=1, product=product, picture="pictures/main.png", rank=10, is_main=True),
                flagged_photo(pk=2, product=product, picture="pictures/side.png", rank=0),
                flagged_photo(pk=3, product=product, picture="pictures/back.png", rank=4),
                flagged_photo(pk=4, product=product, picture="pictures/last.png", rank=40_000)]
    assert [shop_images._values(picture, cfg)["position"] for picture in pictures] == [0, 1, 5, 32767]


def test_a_main_flag_the_image_model_lacks_is_E015(settings, flagged_photo):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": {
        **settings.P2W_SEARCH["IMAGE_MODEL"], "MAIN": "main_picture"}}
    assert [(m.id, m.msg) for m in checks.check_settings()] == [(
        "p2w_search.E015", "P2W_SEARCH['IMAGE_MODEL']['MAIN'] is 'main_picture', which tests.ShopPhoto does not have.")]


def test_a_key_of_the_image_model_setting_that_p2w_search_does_not_read_is_W013(settings, flagged_photo):
    """``"MAIN_FLAG"`` for ``"MAIN"`` (or ``"ORDERING"`` for ``"ORDER"``) left every picture's position to the
    default without a word: the product was searched by another picture than the shop shows first."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": {
        "MODEL": "tests.ShopPhoto", "FILE": "picture", "ORDERING": "rank", "MAIN_FLAG": "is_main"}}
    assert [(m.id, m.msg) for m in checks.check_settings()] == [
        ("p2w_search.W013", "P2W_SEARCH['IMAGE_MODEL'] has the key 'ORDERING', which is no setting of p2w_search: it "
                            "is ignored; did you mean 'ORDER'?"),
        ("p2w_search.W013", "P2W_SEARCH['IMAGE_MODEL'] has the key 'MAIN_FLAG', which is no setting of p2w_search: "
                            "it is ignored; did you mean 'MAIN'?")]

"""Three gaps of the shopper's photo pieces on a host shop's pages, each closed and pinned here.

PhotoSearchView answered ``?page=2`` with no photo with a quiet 200 (a page of results of no
search); a host page that renders ``{% like_your_photo %}`` itself dropped ``?change=in red``
sent without a photo, unsaid; a host view calling ``journey.accept_photo`` without the uploads
storage passed ``manage.py check`` and answered every photo with a 500 whose message spoke of
merchants' uploads. This module is also the URLconf of its tests: the host pages are below.
"""

from pathlib import Path
from types import ModuleType

import pytest
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import RequestContext, Template, engines
from django.test import Client
from django.urls import include, path

from p2w_search import search
from p2w_search.checks import check_photo_storage
from p2w_search.conf import P2WImproperlyConfigured
from p2w_search.search import visible_products
from p2w_search.shopper import journey
from tests import like_this_urls
from tests.test_forms_round import alerts, input_value, selected
from tests.test_like_this import PHOTO, grid_ids, ids, upload
from tests.test_storefront import embed_catalog, make_catalog

pytestmark = pytest.mark.urls("tests.test_shopper_round_2")

NOTHING = "Please check your search. There is nothing to change yet: choose a product or add your photo, then say " \
          "what to change."
NO_PAGES = "Please check your search. There are no pages of results yet: add your photo to search with it."
MISSING = ("STORAGES has no 'p2w_uploads' storage (P2W_SEARCH['UPLOAD_STORAGE']), where {} keeps shoppers' photos: add "
           "one that is never served publicly, e.g. a FileSystemStorage outside MEDIA_ROOT, or set "
           "P2W_SEARCH['UPLOAD_STORAGE'] to the alias of one.")
BROKEN = ("STORAGES['p2w_uploads'] (P2W_SEARCH['UPLOAD_STORAGE']), where {} keeps shoppers' photos, cannot be made "
          "(Could not find backend 'no_such_storages.Storage': No module named 'no_such_storages'): fix its BACKEND or "
          "OPTIONS.")
NO_UPLOAD_STORAGE = {"default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
                     "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture
def shop(db, media):
    products = make_catalog()
    embed_catalog()
    return products


# --- the host shop's own pages -----------------------------------------------------------------------------

OWN_PHOTO_PAGE = Template("{% load p2w_search %}<h1>Find it by photo</h1>{% like_your_photo %}")
# A product page with the whole photo piece below the product's: ?change= is the product's.
PRODUCT_THEN_PHOTO = Template("{% load p2w_search %}<h1>{{ product.title }}</h1>{% like_this product %}"
                              "{% like_your_photo %}")
# A header's photo box that posts to the shop's photo page, before the product's box: ?change= is the product's.
HEADER_BOX_THEN_PRODUCT = Template('{% load p2w_search %}<header>{% like_your_photo part="box" action="/shop/photo/" %}'
                                   "</header><h1>{{ product.title }}</h1>{% like_this product %}")


def own_photo_page(request):
    """A host's photo page of its own: the tag, and accept_photo on a POST; no PhotoSearchView, no for_photo first."""
    if request.method == "POST":
        form, link = journey.accept_photo(request)
        if link is not None:
            return HttpResponseRedirect(request.path + link, status=303)
    return HttpResponse(OWN_PHOTO_PAGE.render(RequestContext(request)))


def own_photo_page_with_status(request):
    """The same page, whose view gives the status of the outcome the tag rendered (the request remembers it)."""
    html = OWN_PHOTO_PAGE.render(RequestContext(request))
    return HttpResponse(html, status=journey.for_photo(request).status)


def jinja_photo_page(request):
    return HttpResponse(engines["jinja2"].from_string("<h1>By photo</h1>{{ like_your_photo(request) }}").render(
        {}, request))


def product_page(template):
    def view(request, pk):
        product = get_object_or_404(visible_products(), pk=pk)
        return HttpResponse(template.render(RequestContext(request, {"product": product})))
    return view


urlpatterns = [
    path("own/photo/", own_photo_page),
    path("own/photo-with-status/", own_photo_page_with_status),
    path("own/jinja-photo/", jinja_photo_page),
    path("own/product/<int:pk>/", product_page(PRODUCT_THEN_PHOTO)),
    path("own/header/<int:pk>/", product_page(HEADER_BOX_THEN_PRODUCT)),
    *like_this_urls.urlpatterns,  # /shop/photo/ and /shop/mugs-by-photo/: PhotoSearchView
    path("", include("shop_demo.urls")),
]


def title(response):
    return response.content.decode().split('<h2 class="p2w-results__title">', 1)[1].split("</h2>", 1)[0]


# --- 1. PhotoSearchView: a page of results with no photo ---------------------------------------------------

@pytest.mark.parametrize("url", ["/shop/photo/", "/shop/mugs-by-photo/"])
@pytest.mark.parametrize("page", ["2", "7", "0", "x"])
def test_a_page_of_results_without_a_photo_is_400_saying_to_add_one(client, shop, url, page):
    """It was a 200 showing the upload box as if nothing had been asked: a page of results of no search."""
    response = client.get(url, {"page": page})
    assert response.status_code == 400
    assert alerts(response) == [NO_PAGES]
    assert title(response) == "No photo searched yet"
    assert 'data-grid="results"' not in response.content.decode()
    assert input_value(response, "p2w-photo-change") == ""  # the box, to add the photo


def test_the_photo_page_alone_or_its_first_page_asks_nothing(client, shop):
    for query in ("", "?page=1", "?page="):
        response = client.get(f"/shop/photo/{query}")
        assert (response.status_code, alerts(response)) == (200, [])
        assert "p2w-results" not in response.content.decode()


def test_a_page_with_a_change_and_no_photo_asks_for_the_photo_to_change(client, shop):
    response = client.get("/shop/photo/?page=2&change=in+red&method=fusion")
    assert response.status_code == 400
    assert alerts(response) == [NOTHING]
    assert input_value(response, "p2w-photo-change") == "in red"
    assert selected(response, "p2w-photo-method") == ["fusion"]


def test_a_page_given_twice_without_a_photo_is_400_naming_it(client, shop):
    response = client.get("/shop/photo/?page=1&page=2")
    assert response.status_code == 400
    assert alerts(response) == ["Please check your search. The link gives “page” 2 times; give it once."]


def test_a_photos_pages_are_still_pages(client, shop):
    link = client.post("/shop/mugs-by-photo/", {"photo": upload()})["Location"]
    second = client.get(link + "&page=2")
    expected = ids(search.image(PHOTO, products=visible_products().filter(category="mug"), k=3))
    assert second.status_code == 200 and grid_ids(second, "results") == expected[2:]


# --- 2. {% like_your_photo %} on a page of the host's own --------------------------------------------------

@pytest.mark.parametrize("url", ["/own/photo/", "/own/jinja-photo/"])
def test_a_host_pages_photo_piece_refuses_a_change_without_a_photo_in_words(client, shop, jinja_backend, url):
    """It showed the upload box, 200, and nothing of the change: dropped unsaid."""
    response = client.get(url, {"change": "in red", "method": "pic2word"})
    assert response.status_code == 200  # a tag cannot set the status (own_photo_page_with_status can)
    assert alerts(response) == [NOTHING]
    assert title(response) == "No photo to change yet"
    assert 'data-p2w-status="400"' in response.content.decode()
    assert input_value(response, "p2w-photo-change") == "in red"  # kept, for the photo the shopper adds
    assert selected(response, "p2w-photo-method") == ["pic2word"]


def test_a_host_pages_photo_piece_refuses_a_method_alone(client, shop):
    response = client.get("/own/photo/", {"method": "fusion"})
    assert alerts(response) == [NOTHING]
    assert selected(response, "p2w-photo-method") == ["fusion"]


def test_a_host_view_gives_the_status_of_the_outcome_its_tag_rendered(client, shop):
    refused = client.get("/own/photo-with-status/", {"change": "in red"})
    assert refused.status_code == 400 and alerts(refused) == [NOTHING]
    assert client.get("/own/photo-with-status/").status_code == 200


def test_a_host_pages_photo_piece_still_searches_its_photo_with_the_change(client, shop):
    link = client.post("/own/photo/", {"photo": upload(), "change": "in green"})["Location"]
    page = client.get(link)
    assert page.status_code == 200 and alerts(page) == []
    assert grid_ids(page, "results") == ids(search.composed(text="in green", image=PHOTO, k=24))
    assert client.get("/own/photo/", {"page": "2"}).status_code == 200  # the host's own paging is its own


@pytest.mark.parametrize("url", ["/own/product/{}/", "/own/header/{}/"])
def test_a_change_another_piece_of_the_page_searches_is_not_refused_by_the_photo_box(client, shop, url):
    product = shop[0]
    response = client.get(url.format(product.pk), {"change": "in red"})
    assert response.status_code == 200 and alerts(response) == []
    assert grid_ids(response, "changed") == ids(search.composed(text="in red", product=product, k=12))
    assert input_value(response, "p2w-photo-change") == ""  # the product's change is not the photo box's
    assert "No photo to change yet" not in response.content.decode()


def test_the_demos_words_and_change_keep_the_photo_box_quiet(client, shop):
    response = client.get("/", {"q": "mug", "change": "in red"})
    assert response.status_code == 200 and alerts(response) == []
    assert input_value(response, "p2w-photo-change") == ""


# --- 3. the uploads storage of a host's own photo page -----------------------------------------------------

def test_a_host_view_keeping_a_photo_without_the_storage_says_which_setting_to_set(settings, db):
    """It raised the uploads' message ("storage for merchants' uploads") from the photo's save: a shop that takes no
    catalog uploads did not learn that the photo needs the storage, and the photo had been decoded and counted."""
    settings.STORAGES = NO_UPLOAD_STORAGE
    with pytest.raises(P2WImproperlyConfigured) as missing:
        Client(raise_request_exception=True).post("/own/photo/", {"photo": upload()})
    assert str(missing.value) == MISSING.format("the photo search")
    settings.STORAGES = {**NO_UPLOAD_STORAGE, "p2w_uploads": {"BACKEND": "no_such_storages.Storage"}}
    with pytest.raises(P2WImproperlyConfigured) as broken:
        Client(raise_request_exception=True).post("/own/photo/", {"photo": upload()})
    assert str(broken.value) == BROKEN.format("the photo search")


@pytest.fixture
def no_templates(settings):
    settings.TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [],
                           "APP_DIRS": False}]


def urlconf(*patterns):
    """A shop's URLconf: the search API, and ``patterns``."""
    module = ModuleType("shopper_round_2_urls")
    module.urlpatterns = [path("api/", include("p2w_search.api.urls")), *patterns]
    return module


def found(settings, root):
    settings.ROOT_URLCONF = root
    return [(message.id, message.msg) for message in check_photo_storage()]


@pytest.fixture
def photo_box_template(settings, tmp_path):
    """A shop whose base template shows the photo box (its product template only like_this)."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "base.html").write_text("{% load p2w_search %}<aside>{% like_your_photo %}</aside>")
    (tmp_path / "shop" / "product.html").write_text("{% load p2w_search %}{% like_this product %}")
    settings.TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [tmp_path],
                           "APP_DIRS": False}]


def test_a_template_with_the_photo_box_without_the_storage_is_E028(settings, photo_box_template):
    settings.STORAGES = NO_UPLOAD_STORAGE
    assert found(settings, urlconf()) == [
        ("p2w_search.E028", MISSING.format("the photo box of the template shop/base.html (like_your_photo)"))]


def test_a_shop_without_photo_pieces_or_with_the_storage_has_no_E028(settings, no_templates, tmp_path):
    settings.STORAGES = NO_UPLOAD_STORAGE
    assert found(settings, urlconf()) == []  # the search API and like_this keep no photo
    settings.STORAGES = {**NO_UPLOAD_STORAGE, "p2w_uploads": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "uploads")}}}
    assert found(settings, urlconf(path("mine/photo/", own_photo_page))) == []


def test_the_apps_own_templates_are_not_a_shops_photo_box(settings):
    """PhotoSearchView's page renders the box too, but it is E014's: found in a folder of the template dirs (as an
    app's templates are), the app's own folder is passed over."""
    import p2w_search

    settings.TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates",
                           "DIRS": [Path(p2w_search.__file__).parent / "templates"], "APP_DIRS": False}]
    settings.STORAGES = NO_UPLOAD_STORAGE
    assert found(settings, urlconf()) == []


def test_a_photo_search_view_without_the_storage_is_E014s_not_E028s(settings, photo_box_template):
    settings.STORAGES = NO_UPLOAD_STORAGE
    root = urlconf(path("photo/", like_this_urls.PhotoSearchView.as_view()), path("mine/photo/", own_photo_page))
    assert found(settings, root) == []


@pytest.fixture
def jinja_backend(settings):
    """Jinja2 (the app's environment) before the test settings' DjangoTemplates, as tests/test_jinja_shop.py has."""
    django_backend, = settings.TEMPLATES
    settings.TEMPLATES = [{"BACKEND": "django.template.backends.jinja2.Jinja2", "DIRS": [], "APP_DIRS": False,
                           "OPTIONS": {"environment": "p2w_search.jinja.environment"}}, django_backend]

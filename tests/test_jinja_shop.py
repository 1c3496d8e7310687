"""A shop whose pages are Jinja2 templates: the shopper's "like this, but ..." pieces as Jinja2 globals.

Jinja2 is the first template backend here (DIRS tests/jinja_shop/templates, the environment
p2w_search.jinja.environment) and DjangoTemplates the second, as a Jinja2 shop keeps it for the
admin and other apps. The pages are tests/jinja_shop/urls.py's: Jinja2 pages calling
``like_this(request, product, ...)`` and ``like_your_photo(request, ...)``, the Django-template
pages of tests/like_this_urls.py, the demo's admin and merchant pages. A Jinja2 page's results
are compared with the tag page's answer to the same request and with the search service.
"""

import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.template import Context, Template, TemplateSyntaxError, engines
from django.test import RequestFactory
from markupsafe import Markup

from p2w_search import search
from p2w_search.checks import check_settings
from p2w_search.composition import STAR_IN_CHANGE
from p2w_search.search import visible_products
from tests.test_like_this import PHOTO, grid_ids, ids, kept_files, shop, upload  # noqa: F401 (shop: a fixture)
from tests.test_merchant_pages import text

pytestmark = pytest.mark.urls("tests.jinja_shop.urls")

JINJA_TEMPLATES = Path(__file__).resolve().parent / "jinja_shop" / "templates"
NO_REQUEST = ("needs the request in the template context: render the page with render(request, ...) or the request "
              "context processor.")


@pytest.fixture(autouse=True)
def jinja_first(settings):
    """Jinja2 first, the test settings' DjangoTemplates second (the admin's, the merchant pages', the pieces')."""
    django_backend, = settings.TEMPLATES
    settings.TEMPLATES = [
        {"BACKEND": "django.template.backends.jinja2.Jinja2", "DIRS": [JINJA_TEMPLATES], "APP_DIRS": True,
         "OPTIONS": {"environment": "p2w_search.jinja.environment"}},
        django_backend,
    ]


@pytest.fixture
def catalog(shop):  # noqa: F811 (the fixture imported above)
    """tests/test_like_this.py's shop: six products, embedded."""
    return shop


def jinja(source, **context):
    return engines["jinja2"].from_string(source).render(context)


def assets(html):
    return html.count("p2w_search/like_this.js"), html.count("p2w_search/like_this.css")


# --- a product page --------------------------------------------------------------------------------------

def test_a_jinja2_product_page_shows_the_box_then_the_tag_pages_results_of_a_change(client, catalog):
    product = catalog[0]
    page = client.get(f"/jinja/product/{product.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and '<input type="text" name="change"' in html  # markup, not escaped text
    assert "&lt;form" not in html and 'data-grid="changed"' not in html  # nothing asked, nothing searched
    assert assets(html) == (1, 1)

    asked = {"change": "in red"}
    changed = client.get(f"/jinja/product/{product.pk}/", asked)
    tag_page = client.get(f"/shop/product/{product.pk}/", asked)
    expected = ids(search.composed(text="in red", product=product, k=12))
    assert len(expected) == 5  # the whole catalog but the product: a grid to compare, not an empty one
    assert grid_ids(changed, "changed") == grid_ids(tag_page, "changed") == expected
    assert changed.status_code == 200 and "Like this, but “in red”" in changed.content.decode()


def test_a_refused_change_on_a_jinja2_page_is_a_400_with_the_reason_and_searches_nothing(client, catalog):
    product = catalog[0]
    refused = client.get(f"/jinja/product/{product.pk}/", {"change": "5 * hotel"})
    tag_page = client.get(f"/shop/product/{product.pk}/", {"change": "5 * hotel"})
    assert refused.status_code == 400
    assert STAR_IN_CHANGE in text(refused) and STAR_IN_CHANGE in text(tag_page)
    assert 'data-grid="changed"' not in refused.content.decode()
    assert 'value="5 * hotel"' in refused.content.decode()  # the box shows what was asked, to correct it


def test_the_box_and_the_results_placed_apart_on_a_jinja2_page(client, catalog):
    product = catalog[1]  # a t-shirt: its results are the 3 mugs, 2 a page
    html = client.get(f"/jinja/apart/{product.pk}/", {"change": "in red"}).content.decode()
    beside, between, below = re.search(
        r'<section id="beside">(.*?)</section>\s*(<p id="between">.*?</p>)\s*<section id="below">(.*?)</section>',
        html, re.DOTALL).groups()
    assert '<form class="p2w-change"' in beside and 'data-grid="changed"' not in beside
    assert '<a class="p2w-chip" href="?change=in+red' in beside and "with stripes" in beside
    assert "in blue" not in beside  # its suggestions, not the default ones
    assert between == f'<p id="between">{product.title} is described here.</p>'
    assert '<form class="p2w-change"' not in below and "<h3" in below and "<h2" not in below
    mugs = visible_products().filter(category="mug")
    expected = ids(search.composed(text="in red", product=product, products=mugs, k=3))
    assert len(expected) == 3  # mugs only, 2 a page
    assert grid_ids(SimpleNamespace(content=below.encode()), "changed") == expected[:2]
    assert assets(beside) == (1, 1) and assets(below) == (0, 0)


def test_both_pieces_on_one_jinja2_page_include_the_assets_once_and_post_the_photo_with_its_csrf_token(client, catalog):
    html = client.get(f"/jinja/both/{catalog[0].pk}/").content.decode()
    assert assets(html) == (1, 1)
    photo_form = re.search(r'<form[^>]*enctype="multipart/form-data".*?</form>', html, re.DOTALL).group(0)
    assert 'action="/jinja/photo/"' in photo_form and 'name="csrfmiddlewaretoken"' in photo_form
    assert '<input type="text" name="change"' in html.replace(photo_form, "")  # the product's box too


# --- the app's PhotoSearchView with a Jinja2 template of the shop's own ----------------------------------

def test_the_photo_view_with_a_jinja2_template_keeps_the_photo_and_shows_the_tag_pages_results(client, catalog):
    posted = client.post("/jinja/photo/", {"photo": upload(), "change": "in green", "method": "pic2word"})
    assert posted.status_code == 303
    link = posted["Location"]
    assert re.fullmatch(r"/jinja/photo/\?photo=[\w-]+&change=in\+green&method=pic2word", link)
    page = client.get(link)
    html = page.content.decode()
    assert page.status_code == 200 and "<h1>Search with your photo, 24 a page</h1>" in html
    expected = ids(search.composed(text="in green", image=PHOTO, method="pic2word", k=24))
    assert len(expected) == 6
    assert grid_ids(page, "results") == grid_ids(client.get(link.replace("/jinja/", "/shop/")), "results") == expected
    assert "Like your photo, but “in green”" in html and 'alt="Your photo"' in html and "<h3" in html


def test_the_photo_view_with_a_jinja2_template_refuses_a_change_with_400_and_keeps_nothing(client, catalog, media):
    refused = client.post("/jinja/photo/", {"photo": upload(), "change": "5 * hotel"})
    assert refused.status_code == 400 and STAR_IN_CHANGE in text(refused)
    assert "<h1>Search with your photo, 24 a page</h1>" in refused.content.decode()
    assert kept_files(media) == []


# --- one implementation, one error -----------------------------------------------------------------------

def test_the_jinja2_functions_and_the_tags_render_the_same_pieces(catalog):
    product = catalog[0]

    def request():
        return RequestFactory().get(f"/p/{product.pk}/", {"change": ["in red", "with stripes"], "method": "fusion"})

    tag = Template('{% load p2w_search %}{% like_this product per_page=3 heading="h4" %}').render(
        Context({"request": request(), "product": product}))
    function = jinja('{{ like_this(request, product, per_page=3, heading="h4") }}', request=request(),
                     product=product)
    assert function == tag and 'data-grid="changed"' in tag and "<h4" in tag


@pytest.mark.parametrize("name", ["like_this", "like_your_photo"])
def test_the_tags_take_the_options_of_the_pieces_with_the_same_defaults(name):
    """The tags list their options (Django refuses an unknown one when it reads the template); the Jinja2 functions
    pass theirs on: a default changed in one place only would make the two kinds of page differ."""
    from p2w_search.shopper import pieces
    from p2w_search.templatetags import p2w_search as tags

    def options(function):
        return {name: parameter.default for name, parameter in inspect.signature(function).parameters.items()
                if parameter.kind is parameter.KEYWORD_ONLY}

    assert options(getattr(tags, name)) == options(getattr(pieces, name))
    assert "per_page" in options(getattr(pieces, name))


def test_the_jinja2_functions_need_the_request_and_a_known_part(catalog):
    from p2w_search import jinja as pieces

    with pytest.raises(ImproperlyConfigured) as no_request:
        jinja("{{ like_this(request, product) }}", product=catalog[0])  # rendered without the request
    assert str(no_request.value) == f"{{{{ like_this(request, ...) }}}} {NO_REQUEST}"
    with pytest.raises(ImproperlyConfigured) as none:
        pieces.like_your_photo(None)
    assert str(none.value) == f"{{{{ like_your_photo(request, ...) }}}} {NO_REQUEST}"
    with pytest.raises(ImproperlyConfigured) as tag:  # the tag's words, as they were
        Template("{% load p2w_search %}{% like_this product %}").render(Context({"product": catalog[0]}))
    assert str(tag.value) == f"{{% like_this %}} {NO_REQUEST}"

    request = RequestFactory().get("/")
    with pytest.raises(TemplateSyntaxError, match=r"^part must be 'box' or 'results', not 'both'$"):
        jinja('{{ like_your_photo(request, part="both") }}', request=request)
    piece = pieces.like_your_photo(request, part="box")
    assert isinstance(piece, Markup) and piece.startswith("<link ")


# --- the rest of the site with Jinja2 first --------------------------------------------------------------

def test_the_system_checks_pass_with_jinja2_first(db, settings):
    assert [engine["BACKEND"] for engine in settings.TEMPLATES] == [
        "django.template.backends.jinja2.Jinja2", "django.template.backends.django.DjangoTemplates"]
    assert check_settings() == []
    call_command("check", databases=["default"])  # raises SystemCheckError on any error (admin.E403 among them)


def test_the_apps_own_photo_page_the_admin_and_the_merchant_pages_render_with_jinja2_first(client, admin_client,
                                                                                           acme, catalog):
    own = client.get("/shop/photo/")  # PhotoSearchView's default template, a Django one
    assert own.status_code == 200 and "<h1>Search with your photo</h1>" in own.content.decode()
    assert 'name="photo"' in own.content.decode()

    assert "Site administration" in text(admin_client.get("/admin/"))
    index = admin_client.get("/admin/p2w_search/embeddingmodel/index/")
    assert index.status_code == 200 and "6 product images in the index" in text(index)

    login = client.get("/merchant/login/")
    assert login.status_code == 200 and "Log in to your shop's catalog" in text(login)
    client.force_login(acme.user)
    upload_page = client.get("/merchant/upload/")
    assert upload_page.status_code == 200 and "Upload your catalog" in text(upload_page)
    assert 'name="csrfmiddlewaretoken"' in upload_page.content.decode()

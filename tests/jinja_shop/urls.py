"""A host shop whose pages are Jinja2 templates (tests/test_jinja_shop.py), beside the Django-template pages.

The Jinja2 pages (templates/jinja_shop/) call the app's pieces as the Jinja2 globals of
p2w_search.jinja.environment; the pages of tests/like_this_urls.py render the same pieces with
the template tags, and the demo's URLs give the admin and the merchant pages, so one test can
ask both kinds of page the same question with Jinja2 as the first template backend.
"""

from django.shortcuts import get_object_or_404, render
from django.urls import include, path

from p2w_search.search import visible_products
from p2w_search.shopper import journey
from p2w_search.shopper.views import PhotoSearchView
from tests import like_this_urls


def product_page(request, pk):
    product = get_object_or_404(visible_products(), pk=pk)
    # Run first for the page's status, as the demo's product page does; the piece shows this request's outcome.
    outcome = journey.for_product(request, product)
    return render(request, "jinja_shop/product.html", {"product": product}, status=outcome.status)


def apart_page(request, pk):
    product = get_object_or_404(visible_products(), pk=pk)
    mugs = visible_products().filter(category="mug")
    return render(request, "jinja_shop/apart.html", {"product": product, "mugs": mugs})


def both_page(request, pk):
    product = get_object_or_404(visible_products(), pk=pk)
    return render(request, "jinja_shop/both.html", {"product": product})


urlpatterns = [
    path("jinja/product/<int:pk>/", product_page),
    path("jinja/apart/<int:pk>/", apart_page),
    path("jinja/both/<int:pk>/", both_page),
    path("jinja/photo/", PhotoSearchView.as_view(template_name="jinja_shop/photo.html")),
    *like_this_urls.urlpatterns,
    path("", include("shop_demo.urls")),
]

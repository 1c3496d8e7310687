"""A host shop's own pages with the app's "like this, but ..." template tags (tests/test_like_this.py).

Nothing of the demo storefront: a product page of the shop's own that renders ``{% like_this %}``
(a plain GET view, as a host's product page is), and the app's PhotoSearchView with its default template.
"""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template import RequestContext, Template
from django.urls import path

from p2w_search.search import visible_products
from p2w_search.shopper.views import PhotoSearchView

PRODUCT_PAGE = Template(
    "{% load p2w_search %}<h1>{{ product.title }}</h1>{% like_this product %}"
)


def product_page(request, pk):
    product = get_object_or_404(visible_products(), pk=pk)
    return HttpResponse(PRODUCT_PAGE.render(RequestContext(request, {"product": product})))


class MugsOnly(PhotoSearchView):
    """A shop's photo page that shows mugs only (its filter)."""

    per_page = 2

    def get_products(self):
        return visible_products().filter(category="mug")


urlpatterns = [
    path("shop/product/<int:pk>/", product_page),
    path("shop/photo/", PhotoSearchView.as_view()),
    path("shop/mugs-by-photo/", MugsOnly.as_view()),
]

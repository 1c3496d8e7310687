"""The test shop's own product page, with the app's "like this, but ..." box and results."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template import RequestContext, Template
from django.urls import path

from p2w_search.search import visible_products

PRODUCT_PAGE = Template("{% load p2w_search %}<h1>{{ product.title }}</h1>{% like_this product %}")


def product_page(request, pk):
    product = get_object_or_404(visible_products(), pk=pk)
    return HttpResponse(PRODUCT_PAGE.render(RequestContext(request, {"product": product})))


urlpatterns = [
    path("product/<uuid:pk>/", product_page, name="product"),
]

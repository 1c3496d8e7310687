"""Requests of an Oscar shop under ATOMIC_REQUESTS (as Oscar recommends), and a page of the shop's own.

A search sets ``hnsw.ef_search``, ``hnsw.iterative_scan`` and, for its exact fallback,
``enable_indexscan = off`` with ``SET LOCAL``, which under ATOMIC_REQUESTS would last to the
end of the request: every later query of Oscar's page would run without index scans.
"""

import re

import pytest
from django.test import Client

from tests.oscar_shop.tests.catalog import Product, embed_here

COLOURS = [(220, 20, 20), (20, 200, 40), (20, 40, 220)]


@pytest.fixture
def small_shop(shop):
    tree = shop.tree()
    products = [shop.product(f"Shirt {i}", category=tree["Shirts"], price=20, stock=1, colour=colour)
                for i, colour in enumerate(COLOURS)]
    shop.product("Mug", category=tree["Mugs"], price=8, stock=3, colour=(245, 245, 245))
    embed_here()
    return tree, products


@pytest.mark.urls("tests.oscar_shop.tests.probe_urls")
@pytest.mark.parametrize("door", ["api", "service"])
def test_after_a_filtered_search_the_rest_of_the_request_runs_with_its_own_settings(small_shop, door):
    tree, _ = small_shop
    # 3 shirts for k=20: the graph scan returns fewer than k, so the exact fallback runs with index scans off.
    # (The test's transaction is around the request's, as a server's is not; SET LOCAL lasts to the end of
    # the outermost one either way, so a leak shows the same.)
    answer = Client().get("/probe/", {"door": door, "category": tree["Shirts"].pk}).json()
    assert answer == {"status": 200, "found": 3, "atomic": True, "enable_indexscan": "on", "hnsw.ef_search": "77",
                      "hnsw.iterative_scan": "off"}


def test_oscar_s_product_page_shows_the_like_this_box_and_its_results(small_shop):
    # myshop/templates/oscar/catalogue/detail.html adds {% like_this product %} to Oscar's own page.
    _, products = small_shop
    page = Client().get(products[0].get_absolute_url(), {"change": "in green"})
    assert page.status_code == 200
    html = page.content.decode()
    shown = {int(pk) for pk in re.findall(r'class="p2w-card" data-product-id="(\d+)"', html)}
    assert shown == set(Product.objects.browsable().exclude(pk=products[0].pk).values_list("pk", flat=True))
    assert f'href="{products[1].get_absolute_url()}"' in html
    assert 'id="add_to_basket_form"' in html  # Oscar's page is all there


def test_the_shop_s_own_page_calls_the_search_service(small_shop):
    _, products = small_shop
    page = Client().get(f"/catalogue/{products[0].pk}/like-this/", {"but": "in green"})
    assert page.status_code == 200
    shown = [product.pk for product, _, _ in page.context["results"]]
    assert sorted(shown) == sorted(p.pk for p in Product.objects.browsable().exclude(pk=products[0].pk))
    assert f'href="{products[1].get_absolute_url()}"' in page.content.decode()

    refused = Client().get(f"/catalogue/{products[0].pk}/like-this/", {"but": "with a * on it"})
    assert refused.status_code == 400 and "*" in refused.context["error"]

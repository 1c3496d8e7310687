"""The app's ``{% like_this %}`` on the test shop's own product page (tests/testshop/pages.py): UUID products,
images in the shop's own storage."""

import re

from p2w_search import search
from tests.testshop.storage import URL_PREFIX


def cards(response):
    """``[(product id, image src, link)]`` of the page's "changed" grid."""
    html = response.content.decode()
    grid = re.search(r'<ul class="p2w-cards" data-grid="changed">(.*?)</ul>', html, re.DOTALL)
    assert grid, html[-3000:]
    return re.findall(r'data-product-id="([0-9a-f-]{36})".*?<a href="([^"]+)">.*?<img src="([^"]+)"',
                      grid.group(1), re.DOTALL)


def test_a_product_page_shows_like_this_but_results_with_the_shops_images(client, catalog):
    blue = catalog["blue lamp"]
    page = client.get(blue.get_absolute_url(), {"change": "in red"})
    assert page.status_code == 200

    found = cards(page)
    expected = search.composed(text="in red", product=blue, k=12).products()
    assert [pk for pk, _, _ in found] == [str(product.pk) for product, _, _ in expected]
    assert str(blue.pk) not in [pk for pk, _, _ in found]
    for (pk, link, src), (product, image, _) in zip(found, expected):
        assert link == f"/product/{pk}/"
        assert src == f"{URL_PREFIX}{image.file.name}"  # the shop's storage, not the app's MEDIA_URL
        assert client.get(src).status_code == 200

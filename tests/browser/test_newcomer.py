"""What a newcomer met following the README: the shop's first page at 360 px, and its way to the merchant pages."""

import pytest
from django.urls import reverse

from tests.browser.test_browser import catalog  # noqa: F401 (fixture)

PHONE = 360


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/?q=red+dress"])
def test_the_shop_page_fits_a_360_px_window(live_server, catalog, browser, path):  # noqa: F811
    """The photo box's method list ("Pic2Word + reference photo (composed)") no longer widens the page.

    A phone emulation widens its layout viewport to the content, so the check is a plain 360 px window,
    where the page scrolled sideways by 23 px and the photo box was cut off on the right.
    """
    context = browser.new_context(viewport={"width": PHONE, "height": 780})
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") == PHONE
        right = page.locator("aside.sidebar").evaluate("element => element.getBoundingClientRect().right")
        assert right <= PHONE
    finally:
        context.close()


@pytest.mark.django_db
def test_the_shop_links_to_the_merchant_pages(client):
    """bin/demo prints "shop and links" for the first page: it links the merchant pages beside the API docs."""
    response = client.get("/")
    assert response.status_code == 200
    footer = response.content.decode().split('<footer class="footer">', 1)[1]
    assert f'<a href="{reverse("p2w_merchant:home")}">Merchants</a>' in footer
    assert f'<a href="{reverse("api-docs")}">API docs</a>' in footer


@pytest.mark.django_db
def test_every_page_of_the_site_has_its_icon(client):
    """Chromium logged a 404 for /favicon.ico on every page: the shop's, the merchant pages' and the admin's."""
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/storefront/favicon.svg")
    assert finders.find("storefront/favicon.svg")

"""A product image uploaded through Oscar's dashboard in a real browser is searchable once a worker embeds it.

Debian's chromium through Playwright (tests/browser/conftest.py), Oscar's own dashboard on
pytest-django's live server (ATOMIC_REQUESTS on), and a real Celery worker with the shop's
settings. Nothing of p2w-search is on the page: the save signal of Oscar's image does it all.
"""

import io

import pytest
from rest_framework.test import APIClient

from p2w_search.models import ImageEmbedding
from p2w_search.models import ProductImage as Mirror
from tests.conftest import wait_for
from tests.oscar_shop.tests.catalog import ProductImage, png

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ORANGE = (255, 140, 0)


def test_an_image_uploaded_in_oscar_s_dashboard_is_indexed_and_found(shop, worker, live_server, page, screenshot,
                                                                      django_user_model, tmp_path):
    django_user_model.objects.create_superuser("staff", "staff@example.com", "staff-pass-1")
    tree = shop.tree()
    jacket = shop.product("Orange jacket", category=tree["Tops"], price=80, stock=2)
    shop.product("Yellow top", category=tree["Tops"], price=30, stock=2, colour=(240, 220, 10))
    photo = tmp_path / "orange.png"
    photo.write_bytes(png(ORANGE, size=(64, 64)))

    page.goto(f"{live_server.url}/dashboard/login/")
    page.fill("input[name=username]", "staff@example.com")
    page.fill("input[name=password]", "staff-pass-1")
    page.click("#dashboard_login_form input[type=submit]")
    page.wait_for_url(f"{live_server.url}/dashboard/")
    page.goto(f"{live_server.url}/dashboard/catalogue/products/{jacket.pk}/")
    page.click("a[href='#product_images']")
    page.set_input_files("input[name=images-0-original]", str(photo))
    page.click("button[name=action][value=continue]")
    page.wait_for_selector(".alert-success")
    screenshot(page, "oscar-dashboard-image-uploaded")

    image = ProductImage.objects.get(product=jacket)
    wait_for(lambda: ImageEmbedding.objects.filter(image__source_pk=str(image.pk), state="ready").exists(),
             timeout=90, message="the dashboard's image embedded by the worker")
    assert Mirror.objects.get(source_pk=str(image.pk)).file.name == image.original.name
    upload = io.BytesIO(png(ORANGE))
    upload.name = "query.png"
    results = APIClient().post("/api/search/image/", {"image": upload}, format="multipart").json()["results"]
    assert results[0]["product"]["id"] == jacket.pk and results[0]["score"] == pytest.approx(1.0, abs=1e-3)

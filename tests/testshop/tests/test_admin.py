"""The app's admin on a shop whose user model logs in by email (no ``username``) and whose products are UUIDs.

Issue 20, item 4: searching the import jobs once was a 500 (``owner__username``).
"""

import re

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from p2w_search.models import ImageEmbedding, ImportJob, ProductImage
from tests.testshop.models import ShopImage
from tests.testshop.tests.shop import COLOURS, png


@pytest.fixture
def staff(catalog):
    """The shop's staff member, logged in to the admin with its email address and password."""
    from django.test import Client

    browser = Client()
    response = browser.post("/admin/login/?next=/admin/", {"username": "staff@example.com", "password": "pw"})
    assert response.status_code == 302 and response["Location"] == "/admin/", response.content[:500]
    return browser


def job(owner, brand):
    return ImportJob.objects.create(owner=owner, merchant_key=brand.pk, manifest=f"p2w/imports/{brand.pk}.csv",
                                    state=ImportJob.State.DONE)


def test_import_jobs_are_searched_by_the_owners_email(staff, catalog):
    alices = job(catalog.users["alice"], catalog.brands["acme"])
    bobs = job(catalog.users["bob"], catalog.brands["north"])
    changelist = reverse("admin:p2w_search_importjob_changelist")

    response = staff.get(changelist, {"q": "alice@example"})

    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [alices.pk]
    assert staff.get(changelist, {"q": "north"}).context["cl"].result_list[0] == bobs  # the merchant's key
    page = staff.get(reverse("admin:p2w_search_importjob_change", args=[alices.pk]))
    assert page.status_code == 200 and b"alice@example.com" in page.content


def test_the_image_admin_shows_the_mirrors_of_the_shops_images(staff, catalog):
    red = ProductImage.objects.get(product=catalog["red lamp"])

    listing = staff.get(reverse("admin:p2w_search_productimage_changelist"))
    assert listing.status_code == 200
    assert f'src="/shop-images/{red.file.name}"'.encode() in listing.content  # the shop's own file and storage
    assert red.file.name.startswith("testshop/images/SKU-0-0")

    page = staff.get(reverse("admin:p2w_search_productimage_change", args=[red.pk]))
    assert page.status_code == 200
    product_page = reverse("admin:testshop_product_change", args=[catalog["red lamp"].pk])
    assert product_page.encode() in page.content  # the raw id widget links the UUID product
    assert staff.get(product_page).status_code == 200


def test_the_index_page_and_the_image_actions(staff, catalog, django_capture_on_commit_callbacks):
    assert staff.get(reverse("admin:p2w_search_index")).status_code == 200

    red = ProductImage.objects.get(product=catalog["red lamp"])
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(reverse("admin:p2w_search_productimage_changelist"),
                              {"action": "reembed", "_selected_action": [red.pk]})
    assert response.status_code == 302
    assert ImageEmbedding.objects.get(image=red).state == ImageEmbedding.State.PENDING


def test_images_added_and_deleted_in_the_shops_admin_are_followed(staff, catalog, django_capture_on_commit_callbacks):
    stool = catalog["orange stool"]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(reverse("admin:testshop_shopimage_add"), {
            "product": str(stool.pk), "position": "1",
            "image": ContentFile(png(COLOURS["green"]), name="stool-side.png")})
    assert response.status_code == 302, response.content[:2000]
    added = ShopImage.objects.get(product=stool, position=1)
    mirror = ProductImage.objects.get(source_pk=str(added.pk))
    assert (mirror.product_id, mirror.file.name, mirror.position) == (stool.pk, added.image.name, 1)
    assert ImageEmbedding.objects.get(image=mirror).state == ImageEmbedding.State.PENDING

    assert staff.get(reverse("admin:testshop_shopimage_change", args=[added.pk])).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(reverse("admin:testshop_shopimage_delete", args=[added.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not ProductImage.objects.filter(source_pk=str(added.pk)).exists()
    assert ProductImage.objects.filter(product=stool).count() == 1  # its first image stays


def test_a_mirrors_change_page_links_the_shops_file(staff, catalog):
    red = ProductImage.objects.get(product=catalog["red lamp"])
    page = staff.get(reverse("admin:p2w_search_productimage_change", args=[red.pk])).content.decode()
    assert f'src="/shop-images/{red.file.name}"' in page or f'href="/shop-images/{red.file.name}"' in page
    assert f'href="/media/{red.file.name}"' not in page
    assert 'type="file"' not in page and 'name="product"' not in page  # the shop's, changed in its own admin

    before = (red.file.name, red.product_id, red.sha256)
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))  # the inline's forms
    response = staff.post(reverse("admin:p2w_search_productimage_change", args=[red.pk]),
                          {**hidden, "product": catalog["orange stool"].pk, "position": 7, "_save": "Save"})
    assert response.status_code == 302
    red.refresh_from_db()
    assert (red.file.name, red.product_id, red.sha256) == before

"""The upload page says what it will refuse before anything is sent, and every merchant page says why it did not read
a request, on a merchant page: a merchant at its limit of waiting uploads, a request over Django's limits on files,
fields or query parameters, an upload check without a catalog file.
"""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from p2w_search.models import ImportJob
from tests.hostile import BLUE, HEADER, RED, row
from tests.test_merchant_pages import UPLOAD, files, text

CHECK = "/merchant/upload/check/"
FIVE_WAITING = ("You have 5 uploads waiting to be imported, the most one merchant may have; send this one once one "
                "of them has ended.")
SHOP_400 = "The shop could not read that request"  # the demo's generic 400 page: no words of a merchant page
NO_FILE = "No file was submitted."  # DRF's words for a missing file: the API's and the upload page's
TWO_IMAGES = ("Too many files in one upload: it takes at most 2 image files beside the catalog file. Send the images "
              "as one zip in “Images as a zip” instead.")
THREE_FILES = "Too many files in one request: this site takes at most 3 (Django's DATA_UPLOAD_MAX_NUMBER_FILES)."
FIVE_FIELDS = ("Too many fields (form fields and query parameters) in one request: this site takes at most 5 (Django's "
               "DATA_UPLOAD_MAX_NUMBER_FIELDS).")


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def waiting_jobs(merchant, count, state=ImportJob.State.QUEUED):
    return [ImportJob.objects.create(owner=merchant.user, merchant_key=str(merchant.pk), state=state,
                                     manifest="imports/earlier.csv") for _ in range(count)]


def alert(response):
    """The text of the page's alert (a merchant page's reason, or the upload form's errors)."""
    found = re.search(r'role="alert"[^>]*>(.*?)</(?:p|div)>', response.content.decode(), re.DOTALL)
    return text(found.group(1)) if found else None


def images(count):
    return [SimpleUploadedFile(f"{n}.png", RED if n % 2 else BLUE) for n in range(count)]


# --- 1. at the limit of waiting uploads, the page says so before any file is chosen ----------------------

def test_at_the_limit_the_upload_page_says_so_and_offers_no_form(acme, client, media):
    """The GET showed the form as if an upload could go; the merchant chose its files, sent them, and only then
    read the 429. Now the GET says why in the refusal's words, with no form; the POST still refuses (429)."""
    client.force_login(acme.user)
    earlier = waiting_jobs(acme, 5)
    page = client.get(UPLOAD)
    body = page.content.decode()
    assert page.status_code == 200
    assert alert(page) == "No upload can be sent now " + FIVE_WAITING  # the POST's refusal, word for word
    assert "The form comes back on this page once one of your uploads has ended: follow them in your uploads" \
        in text(page)
    assert 'id="upload-form"' not in body and 'name="manifest"' not in body and 'type="submit">Upload<' not in body
    assert 'href="/merchant/imports/"' in body
    assert 'data-column="sku"' in body  # the columns are still explained

    sent = client.post(UPLOAD, files(HEADER + row("A-1")))
    refused = "No upload can be sent now " + FIVE_WAITING
    assert (sent.status_code, sent["Retry-After"], alert(sent)) == (429, "60", refused)
    assert 'id="upload-form"' not in sent.content.decode()
    assert ImportJob.objects.count() == 5

    ImportJob.objects.filter(pk=earlier[0].pk).update(state=ImportJob.State.DONE)  # one ended: a place is free
    again = client.get(UPLOAD)
    assert again.status_code == 200 and 'id="upload-form"' in again.content.decode()
    assert FIVE_WAITING not in text(again) and alert(again) is None


def test_staff_acting_for_a_merchant_at_its_limit_see_it_too(acme, staff, client, media):
    client.force_login(staff)
    client.post("/merchant/act-for/", {"merchant": str(acme.pk)})
    waiting_jobs(acme, 4)
    ImportJob.objects.create(owner=staff, merchant_key=str(acme.pk), state=ImportJob.State.RUNNING,
                             manifest="imports/earlier.csv")
    page = client.get(UPLOAD)
    assert page.status_code == 200 and FIVE_WAITING in text(page) and 'id="upload-form"' not in page.content.decode()


# --- 2. more files or fields than Django takes: a merchant page that says which limit ----------------------

def test_more_files_than_django_takes_is_the_upload_page_naming_the_limit(acme, client, media, settings):
    """It was the shop's generic 400 page ("The shop could not read that request"), with nothing of the upload."""
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    client.force_login(acme.user)
    response = client.post(UPLOAD, {**files(HEADER + row("A-1")), "archive": [], "images": images(3)})  # 4 files
    body = text(response)
    assert response.status_code == 400 and SHOP_400 not in body
    assert f"The upload was not accepted Or the image files themselves : {TWO_IMAGES}" in body
    assert "Choose your files again" in body and 'id="upload-form"' in response.content.decode()
    assert not ImportJob.objects.exists()

    assert client.post(UPLOAD, {**files(HEADER + row("A-1")), "archive": [], "images": images(2)}).status_code == 302


def test_more_files_than_django_takes_with_the_csrf_check_of_a_browser(acme, media, settings):
    """A browser's POST meets Django's CSRF middleware first, which read the form and answered the shop's 400 before
    any view ran. The page now reads it itself, then checks the token: still checked."""
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    browser.force_login(acme.user)
    token = {"X-CSRFToken": browser.get(UPLOAD).cookies["csrftoken"].value}
    too_many = browser.post(UPLOAD, {**files(HEADER + row("A-1")), "images": images(2)}, headers=token)
    assert too_many.status_code == 400 and SHOP_400 not in text(too_many) and TWO_IMAGES in text(too_many)

    forged = browser.post(UPLOAD, files(HEADER + row("A-1")))  # no token: refused as before, nothing kept
    assert forged.status_code == 403 and not ImportJob.objects.exists()
    assert browser.post(UPLOAD, files(HEADER + row("A-1")), headers=token).status_code == 302
    assert ImportJob.objects.count() == 1


def test_more_fields_than_django_takes_is_the_upload_page_naming_the_limit(acme, client, media, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    client.force_login(acme.user)
    fields = {"policy": "skip", "full_sync": "on", "confirm_unlist": "1", "a": "1", "b": "2", "c": "3"}
    response = client.post(UPLOAD, {**files(HEADER + row("A-1")), **fields})
    assert response.status_code == 400 and SHOP_400 not in text(response)
    assert f"The upload was not accepted {FIVE_FIELDS}" in text(response)
    assert not ImportJob.objects.exists()


def test_the_upload_check_over_a_limit_answers_in_its_own_shape(acme, client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    client.force_login(acme.user)
    response = client.post(CHECK, {"manifest": SimpleUploadedFile("c.csv", (HEADER + row("A-1")).encode()),
                                   "images": images(3)})
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    answer = response.json()
    assert (answer["errors"], answer["full_sync"], text(answer["html"])) == ({"__all__": [THREE_FILES]}, None,
                                                                            THREE_FILES)


@pytest.mark.parametrize(("method", "url", "who"), [
    ("post", "/merchant/embed-again/", "acme"),
    ("post", "/merchant/act-for/", "staff"),
    ("get", "/merchant/imports/", "acme"),
    ("get", "/merchant/", "acme"),
    ("get", UPLOAD, "acme"),
    ("post", "/merchant/login/", None),
    ("get", "/merchant/login/", None),
    ("post", "/merchant/logout/", "acme"),
])
def test_every_merchant_page_says_which_limit_a_request_is_over(acme, staff, client, settings, method, url, who):
    """The other pages that read a form or a query string showed the shop's generic 400 page too."""
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    if who is not None:
        client.force_login({"acme": acme.user, "staff": staff}[who])
    fields = {f"f{n}": str(n) for n in range(6)}
    response = client.post(url, fields) if method == "post" else client.get(url, fields)
    assert response.status_code == 400 and SHOP_400 not in text(response)
    assert FIVE_FIELDS in alert(response)
    if who == "acme":
        assert client.get("/merchant/").status_code == 200  # still logged in: nothing was done


def test_a_form_too_large_for_django_is_said_on_a_merchant_page(acme, client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    client.force_login(acme.user)
    response = client.post("/merchant/embed-again/", {"note": "x" * 200})
    assert (response.status_code, alert(response)) == (
        400, "The request's form fields are larger than this site takes: at most 100 bytes (Django's "
             "DATA_UPLOAD_MAX_MEMORY_SIZE).")


# --- 3. the upload check without a catalog file ---------------------------------------------------------

@pytest.mark.parametrize("fields", [{}, {"full_sync": "true"}, {"manifest": ""}], ids=["nothing", "full sync", "empty"])
def test_the_upload_check_without_a_catalog_file_is_400_on_the_manifest(acme, client, media, fields):
    """It answered 200 with no error: a check that passed a file it never saw. Now 400, in the upload's words."""
    client.force_login(acme.user)
    check = client.post(CHECK, fields)
    assert (check.status_code, check.json()["errors"], check.json()["full_sync"]) == (400, {"manifest": [NO_FILE]},
                                                                                      None)
    assert text(check.json()["html"]) == NO_FILE
    upload = client.post(UPLOAD, fields)  # the upload itself says the same of the same field
    assert upload.status_code == 400 and f"Catalog file : {NO_FILE}" in text(upload)
    assert not ImportJob.objects.exists()

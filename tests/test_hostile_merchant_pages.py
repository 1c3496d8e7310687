"""Hostile and careless requests on the merchant pages (p2w_search/merchant/), not the upload API or the storefront.

Each gets a merchant page that says what is wrong, never a 500, another merchant's data, a
state change, or a page that answers as if something happened: a file name that is no file
of an upload, another merchant's job, ids that are no job, methods the page does not take,
a POST-only page asked while logged out, ``next`` links off the site, stored values that
look like HTML, form values no browser sends, and a full sync's check that read the file twice.
"""

import re
from datetime import datetime, timezone

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from p2w_search.conf import app_settings
from p2w_search.merchant.access import SESSION_KEY
from p2w_search.models import ImageEmbedding, ImportJob
from p2w_search.uploads import manifest as manifest_module
from shop_demo.catalog.models import Product
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory
from tests.hostile import HEADER, row
from tests.test_merchant_pages import files, post_upload, run, text

NO_UPLOAD = "You have no upload with this id."
NO_MERCHANT = "Only merchants upload catalogs; this account belongs to no merchant."
SHOP_404 = "We couldn’t find that page"  # the demo's storefront 404 page: no words of a merchant page


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


@pytest.fixture
def acme_job(acme, client, media):
    """Acme's upload, imported: one row accepted, one rejected (so it has all three files)."""
    client.force_login(acme.user)
    job = run(post_upload(client, HEADER + row("A-1") + row("A-2", price="cheap")))
    client.logout()
    return job


def alert(response):
    """The text of the page's alert (a merchant page's reason)."""
    found = re.search(r'role="alert"[^>]*>(.*?)</p>', response.content.decode(), re.DOTALL)
    return text(found.group(1)) if found else None


# --- a 404 or 403 is a merchant page that says why ------------------------------------------------------

@pytest.mark.parametrize(("name", "reason"), [
    ("nope", "An upload has no file 'nope'; its files are manifest, archive, rejected-rows."),
    ("<i>nope", "An upload has no file '<i>nope'; its files are manifest, archive, rejected-rows."),
    ("%00", "An upload has no file '\\x00'; its files are manifest, archive, rejected-rows."),
    ("rejected_rows", "An upload has no file 'rejected_rows'; its files are manifest, archive, rejected-rows."),
])
def test_a_file_name_that_is_no_file_of_an_upload_is_404_saying_which_are(acme, acme_job, client, name, reason):
    """The API's words reached no one: the page was the shop's own 404 ("The product may have been removed")."""
    client.force_login(acme.user)
    response = client.get(f"/merchant/imports/{acme_job.pk}/files/{name}/")
    assert (response.status_code, alert(response)) == (404, reason)
    assert SHOP_404 not in text(response)
    assert "<i>" not in response.content.decode()  # the name is shown as text


def test_deleted_files_are_404_saying_when_and_why(acme, acme_job, client):
    """Fails without the fix (the shop's 404 page); the job's page links them only while they are kept."""
    acme_job.manifest.storage.delete(acme_job.manifest.name)  # gone from the storage, the job still names it
    client.force_login(acme.user)
    gone = client.get(f"/merchant/imports/{acme_job.pk}/files/manifest/")
    assert (gone.status_code, alert(gone)) == (404, "The manifest file of this upload is no longer kept.")

    ImportJob.objects.filter(pk=acme_job.pk).update(
        manifest="", archive="", rejected_rows="", files_removed_at=datetime(2026, 3, 4, 12, tzinfo=timezone.utc))
    for name in ("manifest", "archive", "rejected-rows"):
        response = client.get(f"/merchant/imports/{acme_job.pk}/files/{name}/")
        assert (response.status_code, alert(response)) == (
            404, f"The files of this upload were deleted on 2026-03-04, {app_settings.UPLOAD_RETENTION_DAYS} days "
                 "after it ended."), name


@pytest.mark.parametrize("pk", ["0", "2147483648", "99999999999999999999", "{rival}"])
def test_a_job_that_is_not_yours_is_404_in_the_apis_words(acme, rival, acme_job, client, pk):
    """The same words whether the job is another merchant's or none at all: a page tells nothing of other jobs."""
    client.force_login(rival.user)
    rival_job = run(post_upload(client, HEADER + row("R-1")))
    client.force_login(acme.user)
    pk = pk.format(rival=rival_job.pk)
    for url in (f"/merchant/imports/{pk}/", f"/merchant/imports/{pk}/progress/",
                f"/merchant/imports/{pk}/files/manifest/", f"/merchant/imports/{pk}/files/nope/"):
        response = client.get(url)
        assert (response.status_code, alert(response)) == (404, NO_UPLOAD), url
        assert "R-1" not in response.content.decode() and "Rival" not in text(response)


@pytest.mark.parametrize("pk", ["-1", "%C2%B2", "1.0", "1e3", "%00", "+1"])
def test_ids_that_are_no_number_are_404_never_a_500(acme, acme_job, client, pk):
    """Right before this round, pinned: the URL's ``<int:pk>`` takes digits only."""
    client.force_login(acme.user)
    for url in (f"/merchant/imports/{pk}/", f"/merchant/imports/{pk}/progress/",
                f"/merchant/imports/{pk}/files/manifest/"):
        assert client.get(url).status_code == 404, url


def test_staff_refused_an_upload_are_told_why_on_a_merchant_page(acme, acme_job, client, django_user_model):
    """The status was right (403) but the page was Django's bare "403 Forbidden", without the API's reason."""
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)  # no permission, no merchant
    client.force_login(clerk)
    for url in (f"/merchant/imports/{acme_job.pk}/", f"/merchant/imports/{acme_job.pk}/progress/",
                f"/merchant/imports/{acme_job.pk}/files/manifest/"):
        response = client.get(url)
        assert (response.status_code, alert(response)) == (403, NO_MERCHANT), url
        assert "A-2" not in response.content.decode()


# --- methods -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["put", "patch", "delete", "options"])
def test_methods_a_page_does_not_take_are_405(acme, staff, acme_job, client, method):
    """A DELETE of an upload's page answered 200 with the page, as if it were deleted; a PUT of the upload page
    showed the form. Now each page takes its methods only and says which (Allow); nothing changes."""
    pages = {
        "/merchant/": "GET, HEAD", "/merchant/imports/": "GET, HEAD", f"/merchant/imports/{acme_job.pk}/": "GET, HEAD",
        f"/merchant/imports/{acme_job.pk}/progress/": "GET, HEAD",
        f"/merchant/imports/{acme_job.pk}/files/manifest/": "GET, HEAD", "/merchant/template.csv": "GET, HEAD",
        "/merchant/upload/": "GET, HEAD, POST", "/merchant/upload/check/": "POST", "/merchant/embed-again/": "POST",
    }
    client.force_login(acme.user)
    for url, allowed in pages.items():
        response = getattr(client, method)(url)
        assert (response.status_code, response["Allow"]) == (405, allowed), url
    client.force_login(staff)
    response = getattr(client, method)("/merchant/act-for/", "merchant=1")
    assert (response.status_code, response["Allow"]) == (405, "GET, HEAD, POST")
    assert SESSION_KEY not in client.session
    assert list(ImportJob.objects.values_list("pk", "state")) == [(acme_job.pk, "done")]
    assert acme_job.manifest.storage.exists(acme_job.manifest.name)


def test_head_of_a_page_is_its_get_without_a_body(acme, acme_job, client):
    """Right before this round, pinned: HEAD stays allowed where GET is (a link checker, a proxy)."""
    client.force_login(acme.user)
    for url in ("/merchant/", f"/merchant/imports/{acme_job.pk}/", "/merchant/upload/", "/merchant/template.csv"):
        response = client.head(url)
        assert (response.status_code, response.content) == (200, b""), url


# --- logged out, or no merchant chosen: back to a page, not to a 405 -------------------------------------

def test_a_post_only_page_asked_logged_out_comes_back_to_its_page(acme, staff, client):
    """Logging in ends with a GET of ``next``: it was the POST-only URL itself, so a merchant whose session had
    ended pressed "Embed again", logged in and got a 405. Now the page it came from."""
    for url, back in (("/merchant/embed-again/", "/merchant/"), ("/merchant/upload/check/", "/merchant/upload/")):
        response = client.post(url)
        assert (response.status_code, response["Location"]) == (302, f"/merchant/login/?next={back}"), url
        assert client.get(back).status_code == 302  # logged out still: the page asks for a login, as it should

    client.force_login(staff)  # staff who have not chosen a merchant choose, then come back to the page
    for url, back in (("/merchant/embed-again/", "%2Fmerchant%2F"),
                      ("/merchant/upload/check/", "%2Fmerchant%2Fupload%2F")):
        response = client.post(url)
        assert (response.status_code, response["Location"]) == (302, f"/merchant/act-for/?next={back}"), url
    chosen = client.post("/merchant/act-for/", {"merchant": acme.pk, "next": "/merchant/"})
    assert chosen["Location"] == "/merchant/" and client.get(chosen["Location"]).status_code == 200


def test_the_login_page_takes_the_merchant_back_to_a_get_page(acme, client):
    """Right before this round, pinned: a GET page asked logged out is where the login sends the merchant back."""
    response = client.get("/merchant/imports/?page=2")
    assert response["Location"] == "/merchant/login/?next=/merchant/imports/%3Fpage%3D2"
    logged_in = client.post("/merchant/login/", {"username": "acme", "password": "pw",
                                                 "next": "/merchant/imports/?page=2"})
    assert logged_in["Location"] == "/merchant/imports/?page=2"


# --- redirects stay on the site --------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "location"), [
    ("//evil.example/", "/merchant/"),
    ("/\\evil.example/", "/merchant/"),
    ("/\t/evil.example/", "/merchant/"),
    ("///evil.example/", "/merchant/"),
    ("https://evil.example/", "/merchant/"),
    ("javascript:alert(1)", "/merchant/"),
    ("/" + "a" * 10_000, "/merchant/"),
    ("/merchant/\r\nSet-Cookie: x=1", "/merchant/%0D%0ASet-Cookie:%20x=1"),
    ("/%2F%2Fevil.example/", "/%2F%2Fevil.example/"),  # a path of this site: "//" only once decoded
])
def test_act_for_and_login_never_send_off_the_site(acme, staff, client, target, location):
    """Right before this round, pinned: ``next`` of acting for a merchant and of logging in stays a path of this site
    (a header break is percent-encoded, not a second header)."""
    client.force_login(staff)
    chosen = client.post("/merchant/act-for/", {"merchant": acme.pk, "next": target})
    assert (chosen.status_code, chosen["Location"]) == (302, location)
    assert "Set-Cookie" not in chosen.headers and "evil" not in chosen.content.decode()
    client.logout()
    logged_in = client.post("/merchant/login/", {"username": "acme", "password": "pw", "next": target})
    assert (logged_in.status_code, logged_in["Location"]) == (302, location)


# --- stored values are shown as text ---------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def test_stored_values_that_look_like_html_are_shown_as_text(db, client, media, django_user_model):
    """Right before this round, pinned: a merchant's name, SKUs, error reasons and embedding errors reach the
    pages, the progress answer and the upload check escaped, never as markup."""
    from p2w_search import indexing

    user = django_user_model.objects.create_user("evil", password="pw")
    merchant = MerchantFactory(name=f"Shop {SCRIPT}", slug="evil", user=user)
    sku = f"X{IMG}"
    for n in range(4):
        ProductFactory(merchant=merchant, sku=f"{sku}{n}")
    image = ProductImageFactory(product=ProductFactory(merchant=merchant, sku=f"F{SCRIPT}", title=f"T{SCRIPT}"))
    model = indexing.register_model()
    indexing.queue_missing(model)
    ImageEmbedding.objects.filter(image=image).update(state="failed", error=f"cannot read {IMG}")
    client.force_login(user)
    job = run(post_upload(client, HEADER + row(f"{sku}0") + row(f"{sku}1", price=IMG), full_sync="on",
                          confirm_unlist="3"))
    assert job.products_unlisted == 3 and job.errors[0]["reason"].startswith("A valid number is required")
    check = client.post("/merchant/upload/check/", {**files(HEADER + row(f"{sku}0")), "full_sync": "true"}).json()
    bodies = {
        "home": client.get("/merchant/").content.decode(),
        "imports": client.get("/merchant/imports/").content.decode(),
        "job": client.get(f"/merchant/imports/{job.pk}/").content.decode(),
        "progress": "".join(client.get(f"/merchant/imports/{job.pk}/progress/").json()["parts"].values()),
        "check": check["html"],
    }
    for page, body in bodies.items():
        assert SCRIPT not in body and IMG not in body and "<img" not in body, page
    assert f"Shop {SCRIPT}" in text(bodies["home"]) and f"cannot read {IMG}" in text(bodies["home"])
    assert f"{sku}2" in text(bodies["job"]) and f"{sku}1" in text(bodies["check"])


# --- what a check costs ----------------------------------------------------------------------------------

@pytest.fixture
def lines_read(monkeypatch):
    """The manifest lines read, in all: each read of a manifest goes through manifest._text_lines."""
    read = []
    text_lines = manifest_module._text_lines

    def counted(handle, **kwargs):
        for line in text_lines(handle, **kwargs):
            read.append(line)
            yield line

    monkeypatch.setattr(manifest_module, "_text_lines", counted)
    return read


def test_a_full_sync_is_checked_and_counted_on_one_read_of_the_file(acme, client, media, lines_read):
    """The check read the whole manifest to validate it, then again to count the full sync: twice the CPU of a
    50 MB file for each check (merchant.js asks again on every change of the form). Now the SKUs are collected as
    the file is checked; the count is the same."""
    for n in range(10):
        ProductFactory(merchant=acme, sku=f"A-{n}")
    manifest = HEADER + "".join(row(f"A-{n}") for n in range(8)) + row("NEW-1")
    client.force_login(acme.user)
    check = client.post("/merchant/upload/check/", {**files(manifest), "full_sync": "true"})
    assert (check.status_code, check.json()["full_sync"]["unlist"], check.json()["full_sync"]["skus"]) == (
        200, 2, ["A-8", "A-9"])
    assert len(lines_read) == 10  # the header and 9 rows, once

    del lines_read[:]
    job = post_upload(client, manifest, full_sync="on")
    assert len(lines_read) == 10 and (job.full_sync, job.confirm_unlist) == (True, None)
    assert run(job).products_unlisted == 2


# --- form values no browser sends ------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "label", "reason"), [
    ({"confirm_unlist": "²", "full_sync": "on"}, "Confirm unlisting", "A valid integer is required."),
    ({"confirm_unlist": "1\x00", "full_sync": "on"}, "Confirm unlisting", "A valid integer is required."),
    ({"confirm_unlist": "9" * 5000, "full_sync": "on"}, "Confirm unlisting", "String value too large."),
    ({"full_sync": "maybe"}, "Full sync: unlist my listed products that this file does not name",
     "Must be a valid boolean."),
    ({"policy": SCRIPT}, "When a row is bad", f'"{SCRIPT}" is not a valid choice.'),
])
def test_odd_form_values_are_400_naming_the_field_and_keep_nothing(acme, client, media, fields, label, reason):
    """Right before this round, pinned: the page names the field and the API's reason; no job, no product."""
    client.force_login(acme.user)
    response = client.post("/merchant/upload/", {**files(HEADER + row("A-1")), **fields})
    assert response.status_code == 400
    assert f"{label} : {reason}" in text(response) and SCRIPT not in response.content.decode()
    check = client.post("/merchant/upload/check/", {**files(HEADER + row("A-1")), **fields})
    if "policy" in fields:  # the check reads the manifest and the full sync's fields only
        assert (check.status_code, check.json()["errors"]) == (200, {})
    else:
        name = next(iter(fields))
        assert (check.status_code, check.json()["errors"]) == (400, {name: [reason]})
    assert not ImportJob.objects.exists() and not Product.objects.exists()


@pytest.mark.parametrize("page", ["0", "-1", "99999999999999999999", "%FF", "%00", "1&page=9"])
def test_odd_page_numbers_of_the_uploads_are_a_page_never_a_500(acme, acme_job, client, page):
    """Right before this round, pinned: a page that is no number is the first, one past the end the last."""
    client.force_login(acme.user)
    response = client.get(f"/merchant/imports/?page={page}")
    assert response.status_code == 200 and f'data-job-id="{acme_job.pk}"' in response.content.decode()


def test_staff_without_the_product_permissions_cannot_act_or_upload(acme, client, media, django_user_model):
    """Right before this round, pinned: a choice kept in the session from before is not honoured either (the
    act-for link of embed-again comes back to the catalog page: new in this round)."""
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename__in=["view_importjob", "add_product"]))
    client.force_login(clerk)
    assert client.post("/merchant/act-for/", {"merchant": acme.pk}).status_code == 400
    session = client.session
    session[SESSION_KEY] = str(acme.pk)
    session.save()
    sent = client.post("/merchant/upload/", files(HEADER + row("S-1")))
    assert sent["Location"] == "/merchant/act-for/?next=%2Fmerchant%2Fupload%2F"
    assert client.post("/merchant/embed-again/")["Location"] == "/merchant/act-for/?next=%2Fmerchant%2F"
    assert not ImportJob.objects.exists()

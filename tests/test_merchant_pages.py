"""The merchant pages (p2w_search/merchant/) on a real PostgreSQL: the upload API's rules, seen from a page.

An upload from the page is the API's upload (same validation, same words, same job); a
full sync is counted and refused before anything happens; a merchant sees and downloads
only its own uploads; the progress answer says when no worker runs. The browser tests
(tests/browser/test_merchant_pages.py) drive the same pages with real workers.
"""

import csv
import html
import io
import re
from datetime import timedelta

import factory
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from p2w_search import indexing, tasks
from p2w_search.models import ImageEmbedding, ImportJob, ProductImage, WorkerProcess
from p2w_search.uploads import importer, progress
from shop_demo.catalog.imports import ProductImportSerializer
from shop_demo.catalog.models import Product
from tests.factories import ProductFactory, ProductImageFactory, png
from tests.hostile import BLUE, HEADER, RED, row, zip_bytes

IMAGES = [("red.png", RED), ("blue.png", BLUE)]
UPLOAD = "/merchant/upload/"


def files(manifest, images=IMAGES, *, name="catalog.csv"):
    """The multipart fields of an upload: a manifest and a zip of ``images``."""
    data = manifest if isinstance(manifest, bytes) else manifest.encode()
    return {"manifest": SimpleUploadedFile(name, data), "archive": SimpleUploadedFile("images.zip", zip_bytes(images))}


def post_upload(client, manifest, images=IMAGES, **options):
    """POST the upload form; return the job it made (the page redirects to its page)."""
    before = set(ImportJob.objects.values_list("pk", flat=True))
    response = client.post(UPLOAD, {**files(manifest, images), **options})
    assert response.status_code == 302, response.content.decode()[:3000]
    job = ImportJob.objects.exclude(pk__in=before).get()
    assert response["Location"] == f"/merchant/imports/{job.pk}/"
    return job


def run(job):
    """Run the job's import here, as a worker would, and return it fresh."""
    importer.run_import(ImportJob.objects.get(pk=job.pk))
    return ImportJob.objects.get(pk=job.pk)


def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def text(response):
    """The text of a page (or of a piece of HTML): tags dropped, entities decoded, spaces collapsed."""
    body = response if isinstance(response, str) else response.content.decode()
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", body, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def download(response):
    return b"".join(response.streaming_content).decode()


# --- logging in ----------------------------------------------------------------------------------------

def test_the_pages_ask_for_a_login_and_take_the_merchant_back(acme, client, settings):
    response = client.get("/merchant/upload/")
    assert (response.status_code, response["Location"]) == (302, "/merchant/login/?next=/merchant/upload/")
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'name="next" value="/merchant/upload/"' in page.content.decode()
    assert 'for="id_username"' in page.content.decode() and 'for="id_password"' in page.content.decode()

    wrong = client.post("/merchant/login/", {"username": "acme", "password": "nope", "next": "/merchant/upload/"})
    assert wrong.status_code == 200 and "Please enter a correct username and password" in text(wrong)
    right = client.post("/merchant/login/", {"username": "acme", "password": "pw", "next": "/merchant/upload/"})
    assert (right.status_code, right["Location"]) == (302, "/merchant/upload/")
    assert client.get("/merchant/upload/").status_code == 200

    client.logout()
    settings.LOGIN_URL = "/accounts/login/"  # a shop with its own login page
    assert client.get("/merchant/")["Location"] == "/accounts/login/?next=/merchant/"


def test_an_account_of_no_merchant_is_told_so(db, client, django_user_model):
    client.force_login(django_user_model.objects.create_user("shopper"))
    for url in ("/merchant/", UPLOAD, "/merchant/imports/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Only merchants upload catalogs; this account belongs to no merchant." in text(response)


# --- uploading -----------------------------------------------------------------------------------------

def test_an_upload_from_the_page_is_the_apis_upload(acme, rival, client, media):
    manifest = HEADER + row("A-1") + row("A-2", price="cheap") + row("A-3", "blue.png") + row("A-4", "green.png")
    client.force_login(acme.user)
    job = post_upload(client, manifest, policy="skip")
    assert (job.merchant_key, job.owner, job.state, job.policy, job.full_sync) == (str(acme.pk), acme.user, "queued",
                                                                                 "skip", False)
    queued = client.get(f"/merchant/imports/{job.pk}/")
    assert queued.status_code == 200 and f"/merchant/imports/{job.pk}/progress/" in queued.content.decode()
    page_job = run(job)

    response = api_client(rival.user).post("/api/imports/", files(manifest), format="multipart")  # a catalog of its own
    assert response.status_code == 202, response.content
    api_job = run(ImportJob.objects.get(pk=response.json()["id"]))
    fields = ("state", "rows_total", "rows_accepted", "rows_rejected", "errors", "errors_total", "message")
    assert [getattr(page_job, f) for f in fields] == [getattr(api_job, f) for f in fields]
    assert page_job.message == "2 rows imported, 2 images queued for embedding, 2 rows skipped"

    waiting = text(client.get(f"/merchant/imports/{job.pk}/"))
    assert "Imported; the images wait: no worker is running." in waiting
    model = indexing.register_model()  # what a worker does: register the model, embed the images
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    done = text(client.get(f"/merchant/imports/{job.pk}/"))
    assert "Done. 2 rows imported, 2 images queued for embedding, 2 rows skipped." in done
    assert "Images embedded 2 of 2" in done
    assert "3 price A valid number is required." in done
    assert "5 images missing image 'green.png'" in done
    assert "Rows imported 2 Rows failed 2" in done


def test_json_lines_and_image_files_under_reject(acme, client, media):
    client.force_login(acme.user)
    lines = ('{"sku": "J-1", "title": "Mug", "category": "mug", "price": "4.00", "images": "red.png"}\n'
             '{"sku": "J-2", "title": "Mug", "category": "mug", "price": "free", "images": "blue.png"}\n')

    def send(body):
        before = set(ImportJob.objects.values_list("pk", flat=True))
        images = [SimpleUploadedFile("red.png", RED), SimpleUploadedFile("blue.png", BLUE)]
        response = client.post(UPLOAD, {"manifest": SimpleUploadedFile("catalog.jsonl", body.encode()),
                                        "images": images, "policy": "reject"})
        assert response.status_code == 302, text(response)
        return run(ImportJob.objects.exclude(pk__in=before).get())

    job = send(lines)
    assert (job.policy, job.state, job.rows_accepted) == ("reject", "rejected", 0)
    assert not Product.objects.exists()
    page = text(client.get(f"/merchant/imports/{job.pk}/"))
    assert ("Refused; nothing was changed. 1 problems in 1 rows; nothing was imported (policy: reject the whole "
            "upload)") in page
    rejected = download(client.get(f"/merchant/imports/{job.pk}/files/rejected-rows/"))
    assert rejected == ('{"sku": "J-2", "title": "Mug", "category": "mug", "price": "free", "images": "blue.png", '
                        '"error": "price: A valid number is required."}\n')
    assert send(lines.replace('"free"', '"5.00"')).rows_accepted == 2


ALL_COLUMNS = "category, currency, description, error, images, in_stock, price, sku, title"


@pytest.mark.parametrize("manifest, extra", [
    pytest.param(HEADER.replace("price", "prize") + row("A-1"), {}, id="an unknown column"),
    pytest.param(HEADER + row("A-1"), {"archive": SimpleUploadedFile("images.zip", b"GIF89a, no zip")},
                 id="an archive that is no zip"),
    pytest.param(HEADER + row("A-1"), {"images": [SimpleUploadedFile("red.png", RED)]},
                 id="a zip and images both"),
    pytest.param(HEADER + row("A-1"), {"confirm_unlist": "3"}, id="a confirmation without a full sync"),
    pytest.param(HEADER + row("A-1"), {"confirm_unlist": "-1", "full_sync": "on"}, id="a negative confirmation"),
    pytest.param(b"sku\n", {}, id="a manifest without rows"),
])
def test_the_page_refuses_what_the_api_refuses_in_the_same_words(acme, client, media, manifest, extra):
    client.force_login(acme.user)
    page = client.post(UPLOAD, {**files(manifest), **extra})
    api = api_client(acme.user).post("/api/imports/", {**files(manifest), **_again(extra)}, format="multipart")
    assert (page.status_code, api.status_code) == (400, 400)
    messages = [message for texts in api.json().values() for message in texts]
    assert messages
    shown = text(page)
    for message in messages:
        assert message in shown, f"{message!r} is not on the page"
    assert "The upload was not accepted" in shown and "Choose your files again" in shown
    assert not ImportJob.objects.exists()


def _again(extra):
    """The same fields with fresh file objects (a posted file is read to its end)."""
    return {name: ([SimpleUploadedFile(f.name, RED) for f in value] if isinstance(value, list) else
                   SimpleUploadedFile(value.name, b"GIF89a, no zip") if hasattr(value, "read") else value)
            for name, value in extra.items()}


def test_a_full_sync_is_counted_and_refused_before_anything_happens(acme, client, media):
    ProductFactory.create_batch(10, merchant=acme, sku=factory.Iterator([f"A-{n}" for n in range(1, 11)]))
    manifest = HEADER + row("A-1") + row("A-2", price="cheap")  # a bad row's SKU is named all the same
    client.force_login(acme.user)
    refused = client.post(UPLOAD, {**files(manifest), "full_sync": "on"})
    assert refused.status_code == 400 and not ImportJob.objects.exists()
    assert Product.objects.filter(merchant=acme, listed=True).count() == 10

    # What the import itself says of the same upload, through the API:
    answer = api_client(acme.user).post("/api/imports/", {**files(manifest), "full_sync": "true"}, format="multipart")
    api_job = run(ImportJob.objects.get(pk=answer.json()["id"]))
    assert api_job.state == "rejected"
    assert api_job.message in text(refused)
    assert api_job.message.startswith("Full sync refused: it would unlist 8 of your 10 listed products")
    assert "type 8 in “Confirm unlisting”" in text(refused)

    wrong = client.post(UPLOAD, {**files(manifest), "full_sync": "on", "confirm_unlist": "7"})
    assert wrong.status_code == 400 and api_job.message in text(wrong)
    job = post_upload(client, manifest, full_sync="on", confirm_unlist="8")
    assert (job.full_sync, job.confirm_unlist) == (True, 8)
    assert run(job).products_unlisted == 8
    page = text(client.get(f"/merchant/imports/{job.pk}/"))
    assert ("Unlisted by this full sync 8 products no longer shown to shoppers: "
            "A-10, A-3, A-4, A-5, A-6, A-7, A-8, A-9") in page
    assert "Products unlisted 8" in page
    history = client.get("/merchant/imports/").content.decode()
    assert re.search(rf'data-job-id="{job.pk}">.*?<td data-label="Unlisted">8</td>', history, re.DOTALL)


def test_a_full_sync_below_the_share_needs_no_confirmation(acme, client, media):
    ProductFactory.create_batch(10, merchant=acme, sku=factory.Iterator([f"A-{n}" for n in range(1, 11)]))
    manifest = HEADER + "".join(row(f"A-{n}") for n in range(1, 10))
    client.force_login(acme.user)
    job = post_upload(client, manifest, full_sync="on")
    assert run(job).products_unlisted == 1


def test_the_upload_check_counts_a_full_sync_before_the_upload(acme, client):
    ProductFactory.create_batch(10, merchant=acme, sku=factory.Iterator([f"A-{n}" for n in range(1, 11)]))
    manifest = (HEADER + row("A-1") + row("A-2") + row("NEW-1")).encode()
    client.force_login(acme.user)

    def check(**fields):
        return client.post("/merchant/upload/check/", {"manifest": SimpleUploadedFile("c.csv", manifest), **fields})

    answer = check(full_sync="true").json()
    assert answer["full_sync"]["unlist"] == 8 and answer["full_sync"]["listed"] == 10
    assert answer["full_sync"]["skus"] == ["A-10", "A-3", "A-4", "A-5", "A-6", "A-7", "A-8", "A-9"]
    assert answer["full_sync"]["refusal"].startswith("Full sync refused: it would unlist 8 of your 10 listed products")
    assert "A full sync of this file unlists 8 of your 10 listed products: A-10, A-3, A-4, A-5, A-6, A-7, A-8, A-9." \
        in text(answer["html"])
    assert check(full_sync="true", confirm_unlist="8").json()["full_sync"]["refusal"] is None
    answer = check(full_sync="false").json()  # said, so that the merchant sees the check ran (it was silent)
    assert (answer["errors"], answer["full_sync"]) == ({}, None)
    assert text(answer["html"]) == ("The file reads well: 3 products (SKUs), every column known. Each row's values "
                                    "are checked as it is imported; a row that fails comes back to fix.")

    bad = client.post("/merchant/upload/check/", {"manifest": SimpleUploadedFile("c.csv", b"sku,prize\nA,1\n")})
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"manifest": [f"The manifest cannot be used: unknown column 'prize'; the columns "
                                                 f"are {ALL_COLUMNS}."]}
    assert not ImportJob.objects.exists()
    assert client.get("/merchant/upload/check/").status_code == 405


# --- the template --------------------------------------------------------------------------------------

def test_the_template_is_a_header_and_an_example_row_that_imports(acme, client, media):
    client.force_login(acme.user)
    response = client.get("/merchant/template.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="catalog-template.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == list(ProductImportSerializer().fields) and len(rows) == 2
    example = dict(zip(*rows))
    assert example["images"] == "tee-0001-front.jpg;tee-0001-back.jpg"

    job = run(post_upload(client, response.content, [("tee-0001-front.jpg", RED), ("tee-0001-back.jpg", BLUE)]))
    assert (job.state, job.rows_accepted, job.rows_rejected) == ("done", 1, 0)
    assert Product.objects.get(merchant=acme).title == "Red striped t-shirt"

    page = client.get(UPLOAD).content.decode()
    for name, field in ProductImportSerializer().fields.items():
        explained = re.search(rf'<tr data-column="{name}">(.*?)</tr>', page, re.DOTALL)
        assert explained, f"the column {name} is not explained"
        assert html.escape(str(field.help_text)) in explained.group(1)
    price = r'data-column="price">.*?required.*?A number with at most 2 decimals, at least 0\.'
    assert re.search(price, page, re.DOTALL)
    assert re.search(r'data-column="currency">.*?optional.*?Left out or empty: EUR for a new product', page, re.DOTALL)


# --- the failed rows -----------------------------------------------------------------------------------

def test_the_failed_rows_come_back_as_a_file_to_correct_and_upload_again(acme, client, media):
    client.force_login(acme.user)
    manifest = HEADER + row("A-1") + row("A-2", price="cheap") + row("A-3", "green.png")
    job = run(post_upload(client, manifest))
    file = client.get(f"/merchant/imports/{job.pk}/files/rejected-rows/")
    assert file.status_code == 200
    rejected = download(file)
    assert list(csv.reader(io.StringIO(rejected))) == [
        [*HEADER.strip().split(","), "error"],
        ["A-2", "Tee", "", "t-shirt", "cheap", "EUR", "true", "red.png", "price: A valid number is required."],
        ["A-3", "Tee", "", "t-shirt", "9.50", "EUR", "true", "green.png", "images: missing image 'green.png'"],
    ]
    page = client.get(f"/merchant/imports/{job.pk}/").content.decode()
    assert f'href="/merchant/imports/{job.pk}/files/rejected-rows/" download' in page

    corrected = rejected.replace("cheap", "12.00").replace("green.png,", "blue.png,")
    again = run(post_upload(client, corrected.encode()))
    assert (again.state, again.rows_accepted, again.rows_rejected) == ("done", 2, 0)
    assert set(Product.objects.filter(merchant=acme).values_list("sku", flat=True)) == {"A-1", "A-2", "A-3"}


# --- who sees what -------------------------------------------------------------------------------------

def test_a_merchant_sees_and_downloads_only_its_own_uploads(acme, rival, staff, client, media):
    client.force_login(acme.user)
    job = run(post_upload(client, HEADER + row("A-1") + row("A-2", price="cheap")))
    urls = [f"/merchant/imports/{job.pk}/", f"/merchant/imports/{job.pk}/progress/"] + [
        f"/merchant/imports/{job.pk}/files/{name}/" for name in ("manifest", "archive", "rejected-rows")]
    assert [client.get(url).status_code for url in urls] == [200] * 5
    assert f'data-job-id="{job.pk}"' in client.get("/merchant/imports/").content.decode()

    client.force_login(rival.user)
    assert [client.get(url).status_code for url in urls] == [404] * 5
    assert 'data-job-id' not in client.get("/merchant/imports/").content.decode()
    assert 'data-job-id' not in client.get("/merchant/").content.decode()

    client.force_login(staff)  # staff see every upload, as through the API
    assert [client.get(url).status_code for url in urls] == [200] * 5


def test_staff_choose_the_merchant_they_act_for(acme, rival, staff, client, media):
    client.force_login(acme.user)
    acme_job = post_upload(client, HEADER + row("A-1"))
    client.force_login(staff)
    response = client.get("/merchant/imports/")
    assert (response.status_code, response["Location"]) == (302, "/merchant/act-for/?next=%2Fmerchant%2Fimports%2F")
    choose = client.get(response["Location"]).content.decode()
    assert f'<option value="{acme.pk}"' in choose and f'<option value="{rival.pk}"' in choose

    assert client.post("/merchant/act-for/", {"merchant": "999999"}).status_code == 400
    chosen = client.post("/merchant/act-for/", {"merchant": rival.pk, "next": "/merchant/imports/"})
    assert chosen["Location"] == "/merchant/imports/"
    listing = client.get("/merchant/imports/").content.decode()
    assert "data-job-id" not in listing and 'data-acting-for>Rival<' in listing
    job = post_upload(client, HEADER + row("R-1"))
    assert (job.merchant_key, job.owner) == (str(rival.pk), staff)

    client.post("/merchant/act-for/", {"merchant": acme.pk})
    assert f'data-job-id="{acme_job.pk}"' in client.get("/merchant/imports/").content.decode()
    client.post("/merchant/act-for/", {"merchant": "https://evil.example/"})
    assert client.post("/merchant/act-for/", {"merchant": acme.pk, "next": "https://evil.example/"})["Location"] \
        == "/merchant/"
    for target in ("x", "admin:index", "merchant/imports/"):  # not a path: once a 500 or a URL name's page
        assert client.post("/merchant/act-for/", {"merchant": acme.pk, "next": target})["Location"] == "/merchant/"

    client.force_login(acme.user)  # a merchant does not choose
    assert client.get("/merchant/act-for/").status_code == 403


# --- progress ------------------------------------------------------------------------------------------

def test_the_progress_answer_says_when_no_worker_runs(acme, client, media, settings):
    client.force_login(acme.user)
    job = post_upload(client, HEADER + row("A-1"))
    url = f"/merchant/imports/{job.pk}/progress/"

    answer = client.get(url).json()
    assert (answer["progress"]["state"], answer["progress"]["no_worker"], answer["finished"]) == ("queued", True, False)
    assert "Queued: no worker is running." in answer["parts"]["state"]
    assert "Queued: no worker is running." in text(client.get(f"/merchant/imports/{job.pk}/"))

    now = timezone.now()
    worker = WorkerProcess.objects.create(hostname="w@h", pid=1, queues=[settings.P2W_SEARCH["BULK_QUEUE"]],
                                          started_at=now, ready_at=now, seen_at=now)
    answer = client.get(url).json()
    assert answer["progress"]["no_worker"] is False and "waiting for a worker" in answer["parts"]["state"]
    WorkerProcess.objects.filter(pk=worker.pk).update(seen_at=now - timedelta(seconds=60))  # it died
    assert client.get(url).json()["progress"]["no_worker"] is True
    WorkerProcess.objects.create(hostname="q@h", pid=2, queues=[settings.P2W_SEARCH["QUERY_QUEUE"]],
                                 started_at=now, ready_at=now, seen_at=now)  # a query worker imports nothing
    assert client.get(url).json()["progress"]["no_worker"] is True

    run(job)
    answer = client.get(url).json()  # imported; its image waits for a worker that does not run
    assert (answer["progress"]["state"], answer["progress"]["no_worker"], answer["finished"]) == ("done", True, False)
    assert "Imported; the images wait: no worker is running." in answer["parts"]["state"]
    assert client.get(url)["Cache-Control"].startswith("max-age=0")


def test_rows_checked_are_read_back_while_the_import_runs(acme, client, media):
    client.force_login(acme.user)
    job = post_upload(client, HEADER + row("A-1"))
    ImportJob.objects.filter(pk=job.pk).update(state="running")
    report = progress.row_reporter(job.pk, every=3600)
    url = f"/merchant/imports/{job.pk}/progress/"

    def rows():
        answer = client.get(url).json()
        return answer["progress"]["rows_checked"], answer["progress"]["rows_in_all"], answer["parts"]["rows"]

    assert rows()[:2] == (0, 0)
    report(3, 40)
    checked, in_all, part = rows()
    assert (checked, in_all) == (3, 40) and 'max="40" value="3"' in part and "3 of 40" in part
    report(4, 40)  # within the hour: not written
    assert rows()[:2] == (3, 40)
    report(40, 40)  # the last is always written
    assert rows()[:2] == (40, 40)


def test_the_import_task_reports_its_rows(acme, client, media):
    """The task as a worker runs it passes the reporter: the cache holds the last count."""
    client.force_login(acme.user)
    job = post_upload(client, HEADER + row("A-1") + row("A-2") + row("A-3", price="cheap"))
    cache.delete(progress.ROWS_KEY.format(job.pk))
    assert tasks.run_import(job.pk) == "done"
    assert cache.get(progress.ROWS_KEY.format(job.pk)) == (3, 3)


# --- the catalog at a glance ---------------------------------------------------------------------------

def test_the_catalog_at_a_glance_and_embedding_the_failed_ones_again(acme, rival, client, media):
    model = indexing.register_model()
    images = {}
    for n, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200), (90, 90, 90), (10, 10, 10)]):
        product = ProductFactory(merchant=acme, sku=f"A-{n}", listed=n != 3)
        images[product.sku] = ProductImageFactory(product=product, data=png(colour))
    ProductFactory(merchant=acme, sku="A-NO-IMAGE")
    ProductImageFactory(product=ProductFactory(merchant=rival, sku="R-1"))  # not acme's
    indexing.queue_missing(model)
    ready = ImageEmbedding.objects.filter(image__in=[images[s] for s in ("A-0", "A-1", "A-2")])
    indexing.embed_pending(model.pk, list(ready.values_list("pk", flat=True)))
    ImageEmbedding.objects.filter(image=images["A-4"]).update(state="failed", error="cannot identify image file")
    second = ProductImageFactory(product=images["A-0"].product, data=png((1, 2, 3)), position=1)
    ProductImage.objects.filter(pk=second.pk).update(in_index=False)  # taken out of the index: not counted

    client.force_login(acme.user)
    page = client.get("/merchant/").content.decode()
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', page))
    assert counts == {"products": "6", "listed": "5", "unlisted": "1", "embedded": "3", "waiting": "1", "failed": "1",
                      "without_images": "1"}
    assert "A-4 Product" in text(client.get("/merchant/")) and "cannot identify image file" in page

    response = client.post("/merchant/embed-again/", follow=True)
    assert "1 failed images are queued to be embedded again." in text(response)
    row_ = ImageEmbedding.objects.get(image=images["A-4"])
    assert (row_.state, row_.attempts, row_.error) == ("pending", 0, "")
    assert dict(re.findall(r'data-count="(\w+)">(\d+)<', response.content.decode()))["failed"] == "0"
    assert client.get("/merchant/embed-again/").status_code == 405


def test_a_poll_costs_the_same_whatever_the_uploads_size(acme, client, media):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(acme.user)
    model = indexing.register_model()
    counts = []
    for size in (2, 40):
        job = run(post_upload(client, HEADER + "".join(row(f"S{size}-{n}", "red.png" if n % 2 else "blue.png")
                                                        for n in range(size))))
        indexing.queue_missing(model)
        indexing.embed_pending(model.pk, list(ImageEmbedding.objects.filter(state="pending")
                                              .values_list("pk", flat=True)))
        client.get(f"/merchant/imports/{job.pk}/progress/")  # the first poll after the end stores the counts
        with CaptureQueriesContext(connection) as queries:
            answer = client.get(f"/merchant/imports/{job.pk}/progress/").json()
        assert answer["finished"] and answer["progress"]["images_embedded"] == size
        counts.append(len(queries))
    assert counts[0] == counts[1], counts

"""How many uploads one merchant may have waiting (``IMPORT_MAX_WAITING``): the API's 429, the page's words, the race.

A merchant's runaway script must neither fill the upload storage nor the bulk queue that every
merchant shares: past the limit an upload is refused before its files are read, and nothing of
it is kept. Two uploads at once with one place left take turns under the merchant's lock.
"""

import io
import json
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db.models.signals import post_save

from p2w_search.conf import P2WImproperlyConfigured
from p2w_search.models import ImportJob
from p2w_search.uploads import importer, limits
from shop_demo.catalog.models import Product
from tests.factories import post_catalog, token_client
from tests.hostile import HEADER, RED, row, zip_bytes
from tests.test_concurrent_writes import Writer, stop_at, wait_until_a_writer_waits_for_a_lock  # noqa: F401
from tests.test_merchant_pages import UPLOAD, files, text

FIVE_WAITING = ("You have 5 uploads waiting to be imported, the most one merchant may have; send this one once one "
                "of them has ended.")
MANIFEST = HEADER + row("TEE-1")
ARCHIVE = zip_bytes([("red.png", RED)])
QUEUED, RUNNING = ImportJob.State.QUEUED, ImportJob.State.RUNNING
DONE, FAILED, REJECTED = ImportJob.State.DONE, ImportJob.State.FAILED, ImportJob.State.REJECTED


# Committed rows: the race test's writers run on connections of their own. The merchants are conftest's.
pytestmark = pytest.mark.django_db(transaction=True)


def jobs(merchant, *states, owner=None):
    """Jobs of ``merchant`` in ``states``, as earlier uploads left them (their files are not the point here)."""
    for state in states:
        ImportJob.objects.create(owner=owner or merchant.user, merchant_key=str(merchant.pk), state=state,
                                 manifest="imports/earlier.csv")


def waiting(merchant):
    return ImportJob.objects.filter(merchant_key=str(merchant.pk), state__in=[QUEUED, RUNNING]).count()


def stored(media):
    """The files in the upload storage (the media fixture puts it beside MEDIA_ROOT)."""
    uploads = Path(media).parent / "uploads"
    return sorted(str(path.relative_to(uploads)) for path in uploads.rglob("*") if path.is_file())


def upload(client):
    return post_catalog(client, MANIFEST, ARCHIVE)


def assert_refused(response, detail=FIVE_WAITING):
    assert response.status_code == 429, response.content
    assert response.json() == {"detail": detail}
    assert response["Retry-After"] == "60"


# --- the API ---------------------------------------------------------------------------------------------

def test_the_api_refuses_a_sixth_upload_with_a_429_and_keeps_nothing_of_it(acme, media):
    jobs(acme, QUEUED, QUEUED, QUEUED, RUNNING, RUNNING)

    assert_refused(upload(token_client(acme.user)))
    assert waiting(acme) == 5 and ImportJob.objects.count() == 5
    assert stored(media) == []


def test_a_refused_upload_is_answered_before_its_body_is_parsed(acme, media):
    """A body the parser refuses (multipart without a boundary) is a 400 once parsed: the 429 comes first."""
    client = token_client(acme.user)
    jobs(acme, QUEUED, QUEUED, QUEUED, QUEUED)
    unparsable = {"data": b"--x\r\nnot a form", "content_type": "multipart/form-data"}
    assert client.generic("POST", "/api/imports/", **unparsable).status_code == 400  # one place left: it is read
    jobs(acme, QUEUED)

    assert_refused(client.generic("POST", "/api/imports/", **unparsable))


def test_only_queued_and_running_uploads_take_a_place(acme, media):
    client = token_client(acme.user)
    jobs(acme, QUEUED, QUEUED, RUNNING, RUNNING, DONE, FAILED, REJECTED, DONE)

    assert upload(client).status_code == 202  # four waiting: the fifth gets in
    assert_refused(upload(client))
    ImportJob.objects.filter(pk=ImportJob.objects.filter(state=RUNNING).first().pk).update(state=FAILED)  # it ended
    assert upload(client).status_code == 202
    assert waiting(acme) == 5


def test_another_merchants_uploads_are_not_counted(acme, rival, media):
    jobs(acme, *[QUEUED] * 5)
    jobs(rival, *[QUEUED] * 4)

    assert_refused(upload(token_client(acme.user)))
    assert upload(token_client(rival.user)).status_code == 202
    assert (waiting(acme), waiting(rival)) == (5, 5)


def test_the_setting_sets_the_limit(acme, media, settings):
    client = token_client(acme.user)
    jobs(acme, QUEUED, QUEUED)
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_MAX_WAITING": 2}
    assert_refused(upload(client), "You have 2 uploads waiting to be imported, the most one merchant may have; send "
                                   "this one once one of them has ended.")

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_MAX_WAITING": 1}  # lowered below what is waiting
    assert_refused(upload(client), "You have 2 uploads waiting to be imported, and one merchant may have at most 1; "
                                   "send this one once 2 of them have ended.")
    ImportJob.objects.filter(pk=ImportJob.objects.order_by("pk").first().pk).update(state=DONE)
    assert_refused(upload(client), "You have 1 upload waiting to be imported, the most one merchant may have; send "
                                   "this one once it has ended.")

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_MAX_WAITING": None}  # no limit
    jobs(acme, *[QUEUED] * 9)
    assert upload(client).status_code == 202
    assert waiting(acme) == 11

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_MAX_WAITING": 0}
    with pytest.raises(P2WImproperlyConfigured, match=r"P2W_SEARCH\['IMPORT_MAX_WAITING'\] must be a whole number"):
        limits.max_waiting()


def test_the_schema_lists_the_429_of_an_upload(acme, client):
    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)
    answer = schema["paths"]["/api/imports/"]["post"]["responses"]["429"]
    assert "IMPORT_MAX_WAITING uploads waiting" in answer["description"]
    assert answer["content"]["application/json"]["schema"]["required"] == ["detail"]


# --- create_job: the rule every door goes through ----------------------------------------------------------

@pytest.mark.parametrize("full_sync", [False, True], ids=["an update", "a full sync (its listed SKUs too)"])
def test_create_job_refused_over_the_limit_deletes_the_files_it_stored(acme, media, full_sync):
    """The doors look first; create_job counts again under the lock, after the files are stored, and deletes them."""
    jobs(acme, *[RUNNING] * 5)
    values = {"manifest": ContentFile(MANIFEST.encode(), name="catalog.csv"), "archive": ContentFile(ARCHIVE),
              "policy": "skip", "full_sync": full_sync}

    with pytest.raises(limits.TooManyWaiting, match=f"^{FIVE_WAITING}$"):
        importer.create_job(owner=acme.user, merchant_key=str(acme.pk), values=values)
    assert ImportJob.objects.count() == 5 and stored(media) == []


def test_two_uploads_at_once_with_one_place_left_get_in_once(acme, media, stop_at):  # noqa: F811
    """The first is stopped inside its transaction, its job saved; the second waits for the merchant's lock, then
    counts the first. Without the lock both counted four and both got in."""
    jobs(acme, *[QUEUED] * 4)
    stop = stop_at(post_save, ImportJob)
    first = Writer(lambda: upload(token_client(acme.user)))
    stop.wait()
    second = Writer(lambda: upload(token_client(acme.user)))
    wait_until_a_writer_waits_for_a_lock()
    stop.go()

    assert first.result().status_code == 202
    assert_refused(second.result())
    assert waiting(acme) == 5
    job = ImportJob.objects.get(pk=first.result().json()["id"])
    assert stored(media) == sorted([job.manifest.name, job.archive.name])  # the second's files were deleted


# --- the pages -----------------------------------------------------------------------------------------

def test_the_upload_page_says_why_and_keeps_nothing(acme, client, media):
    client.force_login(acme.user)
    jobs(acme, *[QUEUED] * 5)

    page = client.post(UPLOAD, files(MANIFEST, [("red.png", RED)]))
    assert page.status_code == 429 and page["Retry-After"] == "60"
    assert FIVE_WAITING in text(page)
    assert ImportJob.objects.count() == 5 and stored(media) == []
    # Said as soon as the file is chosen, before the images are sent.
    check = client.post("/merchant/upload/check/", {"manifest": SimpleUploadedFile("catalog.csv", MANIFEST.encode())})
    assert check.status_code == 429 and check.json()["errors"] == {"__all__": [FIVE_WAITING]}
    assert FIVE_WAITING in text(check.json()["html"])


def test_staff_acting_for_a_merchant_count_against_it(acme, staff, client, media):
    client.force_login(staff)
    client.post("/merchant/act-for/", {"merchant": str(acme.pk)})
    jobs(acme, *[QUEUED] * 4)
    jobs(acme, QUEUED, owner=staff)  # an upload staff sent for acme

    assert_refused(upload(token_client(acme.user)))
    page = client.post(UPLOAD, files(MANIFEST, [("red.png", RED)]))
    assert page.status_code == 429 and FIVE_WAITING in text(page)
    ImportJob.objects.filter(owner=staff).update(state=DONE)
    assert client.post(UPLOAD, files(MANIFEST, [("red.png", RED)])).status_code == 302
    assert ImportJob.objects.filter(state=QUEUED, owner=staff, merchant_key=str(acme.pk)).count() == 1


# --- p2w_import --------------------------------------------------------------------------------------

def test_p2w_import_at_the_limit_says_so_and_imports(acme, media, tmp_path):
    """Run on the server by staff, it is not limited (README); its job takes a place while it runs."""
    manifest, archive = tmp_path / "catalog.csv", tmp_path / "images.zip"
    manifest.write_text(MANIFEST)
    archive.write_bytes(ARCHIVE)
    jobs(acme, *[QUEUED] * 5)
    err = io.StringIO()

    call_command("p2w_import", str(manifest), "--archive", str(archive), "--merchant", str(acme.pk),
                 stdout=io.StringIO(), stderr=err)
    assert (f"merchant '{acme.pk}' has 5 uploads waiting, and its uploads are refused at 5 (IMPORT_MAX_WAITING); "
            "this import from the server runs all the same") in err.getvalue()
    assert Product.objects.filter(merchant=acme, sku="TEE-1").exists()
    assert ImportJob.objects.latest("pk").state == DONE


def test_a_merchants_waiting_uploads_and_its_newest_jobs_are_read_by_index(acme, rival):
    """Both scanned every merchant's jobs, which are never deleted: each upload and each page of the list."""
    from django.db import connection

    ImportJob.objects.bulk_create(  # a merchant among many: most jobs are others', most jobs have ended
        ImportJob(owner=merchant.user, merchant_key=str(merchant.pk), state=state, manifest="imports/earlier.csv")
        for merchant, count in ((rival, 3000), (acme, 30)) for state in [DONE] * count + [QUEUED])
    with connection.cursor() as cursor:  # the planner's choice on a table of years of jobs, not of 600 rows
        cursor.execute("ANALYZE p2w_search_importjob")
        cursor.execute("SET enable_seqscan = off")
    try:
        counted = ImportJob.objects.filter(merchant_key=str(acme.pk), state__in=limits.WAITING).explain()
        newest = ImportJob.objects.filter(merchant_key=str(acme.pk)).order_by("-pk")[:20].explain()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")
    assert "p2w_job_merchant_waiting" in counted, counted
    assert "p2w_job_merchant_newest" in newest and "Sort" not in newest, newest

"""Storage faults: a full disk (ENOSPC), a read-only folder (EROFS, EACCES), a file that vanished.

They must never lose or half-write a catalog, nor stall the system: an upload the server cannot
store is answered 503 and leaves nothing behind; an import whose files cannot be written fails as
a whole, saying why, and leaves no products nor files; a worker that cannot read one image marks
that image failed and embeds the others; cleanups that the storage refuses go on with the rest.
The faults come from tests/fault_storage.py (a FileSystemStorage that raises the OSError asked
for): chmod does not stop root, whom tests may run as.
"""

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from p2w_search import dispatch, indexing, orphans, product_images, tasks
from p2w_search.models import FileDeletion, ImageEmbedding, ImportJob, ProductImage
from p2w_search.uploads import importer
from shop_demo.catalog.models import Product
from tests.conftest import wait_for
from tests.factories import MerchantFactory, ProductImageFactory, png, post_catalog, token_client
from tests.fault_storage import storage_settings
from tests.hostile import BLUE, HEADER, RED, row, zip_bytes

FULL = "The import failed: the server could not store or read its files ({}); nothing was imported. Try again " \
       "later, or tell the shop's staff if it happens again."


@pytest.fixture
def merchant(db, django_user_model):
    return MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme"))


client_for = token_client


def post(client, manifest, files=(("red.png", RED), ("blue.png", BLUE)), **options):
    return post_catalog(client, manifest, zip_bytes(list(files)), **options)


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def uploads_folder(settings):
    return settings.STORAGES["p2w_uploads"]["OPTIONS"]["location"]


def faulty(settings, alias, **fault):
    """Make storage ``alias`` (in its folder) fail as ``fault`` says (fault_storage.storage_settings)."""
    location = settings.MEDIA_ROOT if alias == "default" else uploads_folder(settings)
    settings.STORAGES = {**settings.STORAGES, alias: storage_settings(location, **fault)}


@pytest.mark.parametrize(("error", "match"), [("ENOSPC", "catalog"), ("ENOSPC", "images"), ("EROFS", "catalog"),
                                              ("EACCES", "images")])
def test_an_upload_the_server_cannot_store_is_answered_503_and_leaves_nothing(merchant, media, settings, error,
                                                                               match, caplog):
    """The merchant's files were fine: a full or read-only disk is the server's problem, said in plain words,
    and neither a job nor a (partial) file is left: no job names a missing file, no file is an orphan."""
    faulty(settings, "p2w_uploads", fail=["save"], error=error, match=match)
    response = post(client_for(merchant.user), HEADER + row("A-1"))
    assert response.status_code == 503, response.content
    assert response.json() == {"detail": "The server cannot store uploads right now; nothing was saved. Try again "
                                         "later."}
    assert response["Retry-After"]
    assert not ImportJob.objects.exists()
    assert files_in(uploads_folder(settings)) == [] and files_in(media) == []
    assert "could not store an upload" in caplog.text  # the admin's reason, with the path, is in the log


def test_an_upload_file_the_server_cannot_read_is_answered_503(merchant, media, settings):
    api = client_for(merchant.user)
    job_id = post(api, HEADER + row("A-1")).json()["id"]
    faulty(settings, "p2w_uploads", fail=["open"], error="EIO", match="catalog")
    response = api.get(f"/api/imports/{job_id}/files/manifest/")
    assert response.status_code == 503
    assert response.json() == {"detail": "The server cannot read this file right now; try again later."}
    assert api.get(f"/api/imports/{job_id}/files/archive/").status_code == 200


def test_a_manifest_whose_disk_fails_under_its_read_is_answered_503(merchant, media, settings):
    """A manifest is read through before it is served (for cells a spreadsheet would run): a read that fails is the
    server's problem, as an open that fails is, not a 500."""
    api = client_for(merchant.user)
    job_id = post(api, HEADER + row("A-1")).json()["id"]
    faulty(settings, "p2w_uploads", fail=["read"], error="EIO", match="catalog")
    response = api.get(f"/api/imports/{job_id}/files/manifest/")
    assert (response.status_code, response.json()) == (
        503, {"detail": "The server cannot read this file right now; try again later."})


def test_the_upload_page_says_the_server_cannot_store_the_upload_and_keeps_nothing(merchant, media, settings, client):
    client.force_login(merchant.user)
    faulty(settings, "p2w_uploads", fail=["save"], error="ENOSPC", match="catalog")
    response = client.post("/merchant/upload/", {
        "manifest": SimpleUploadedFile("catalog.csv", (HEADER + row("A-1")).encode()),
        "archive": SimpleUploadedFile("images.zip", zip_bytes([("red.png", RED)]))})
    assert response.status_code == 503
    assert "The server cannot store uploads right now; nothing was saved. Try again later." in response.content.decode()
    assert not ImportJob.objects.exists() and files_in(uploads_folder(settings)) == []


def test_the_merchant_and_admin_pages_say_a_file_cannot_be_read(merchant, media, settings, client,
                                                                 django_user_model):
    job_id = post(client_for(merchant.user), HEADER + row("A-1")).json()["id"]
    faulty(settings, "p2w_uploads", fail=["open"], error="EIO", match="catalog")
    unreadable = "The server cannot read this file right now; try again later."
    client.force_login(merchant.user)
    response = client.get(f"/merchant/imports/{job_id}/files/manifest/")
    assert (response.status_code, response.content.decode()) == (503, unreadable)
    client.force_login(django_user_model.objects.create_superuser("boss", password="pw"))
    response = client.get(f"/admin/p2w_search/importjob/{job_id}/files/manifest/")
    assert (response.status_code, response.content.decode()) == (503, unreadable)


@pytest.mark.parametrize("error", ["ENOSPC", "CLOUD"])  # a full disk; a cloud storage's refusal, no OSError (a 500)
@pytest.mark.parametrize("match", ["p2w-photos", ".jpg"])  # the photo itself, or its thumbnail after it
def test_a_shoppers_photo_the_server_cannot_keep_is_answered_503_and_leaves_nothing(db, client, media, settings,
                                                                                    match, error):
    faulty(settings, "p2w_uploads", fail=["save"], error=error, match=match)
    photo = io.BytesIO(png())
    photo.name = "photo.png"
    response = client.post("/", {"photo": photo, "change": "in red"})
    assert response.status_code == 503
    assert "The shop cannot keep your photo right now; try again in a few minutes." in response.content.decode()
    assert files_in(uploads_folder(settings)) == []


@pytest.mark.parametrize("policy", ["skip", "reject"])
@pytest.mark.parametrize("error", ["ENOSPC", "EROFS"])
def test_an_import_whose_image_files_cannot_be_written_fails_whole_saying_why(merchant, media, settings, policy,
                                                                              error, monkeypatch):
    """A full disk is not the row's fault: even with policy=skip the whole job fails, in one transaction, naming
    the cause; the files it wrote are deleted. It is ended: the sweep does not send it again."""
    api = client_for(merchant.user)
    job_id = post(api, HEADER + row("A-1", "red.png") + row("A-2", "blue.png") + row("A-3", "red.png;blue.png"),
                  policy=policy).json()["id"]
    faulty(settings, "default", fail=["save"], error=error, match="blue")
    with pytest.raises(OSError):
        tasks.run_import(job_id)  # the task's body, as a worker runs it
    job = ImportJob.objects.get(pk=job_id)
    reason = {"ENOSPC": "No space left on device", "EROFS": "Read-only file system"}[error]
    assert (job.state, job.message) == ("failed", FULL.format(reason))
    assert job.ended_at is not None and not job.rejected_rows
    assert not Product.objects.exists() and not ProductImage.objects.exists()
    left = files_in(media)
    if error == "ENOSPC":  # the parts of blue.png (two rows') written before the disk was full: no row refers to
        assert left and all("/blue-" in name for name in left), left  # them ...
        later = timezone.now() + orphans.ORPHAN_MIN_AGE + timedelta(minutes=1)
        assert orphans.remove_orphan_files(now=later)["images"] == len(left)  # ... and the daily sweep deletes them
    assert files_in(media) == []
    answer = api.get(f"/api/imports/{job_id}/").json()
    assert (answer["state"], answer["finished"], answer["message"]) == ("failed", True, FULL.format(reason))

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SWEEP_AFTER": 0}
    sent = []
    monkeypatch.setattr(dispatch, "send", lambda name, **kwargs: sent.append(name))
    tasks.sweep_pending()
    assert dispatch.RUN_IMPORT not in sent


@pytest.mark.parametrize("policy", ["skip", "reject"])
def test_an_import_whose_rejected_rows_file_cannot_be_written_fails_and_leaves_nothing(merchant, media, settings,
                                                                                       policy):
    """The rejected rows are the merchant's to fix: an import that cannot keep them fails as a whole, saying why,
    and the part of the file that was written is deleted."""
    api = client_for(merchant.user)
    job_id = post(api, HEADER + row("A-1") + row("A-2", price="cheap"), policy=policy).json()["id"]
    uploads = files_in(uploads_folder(settings))
    faulty(settings, "p2w_uploads", fail=["save"], error="ENOSPC", match="rejected-rows")
    with pytest.raises(OSError):
        tasks.run_import(job_id)
    job = ImportJob.objects.get(pk=job_id)
    assert (job.state, job.message) == ("failed", FULL.format("No space left on device"))
    assert not job.rejected_rows and not Product.objects.exists()
    assert files_in(uploads_folder(settings)) == uploads and files_in(media) == []


def test_the_rejected_rows_file_of_an_import_that_did_not_commit_is_deleted(merchant, media, settings, monkeypatch):
    """The rejected-rows file is in the uploads' storage, not the images': it is deleted from there."""
    from django.db import OperationalError

    api = client_for(merchant.user)
    job_id = post(api, HEADER + row("A-1") + row("A-2", price="cheap")).json()["id"]
    uploads = files_in(uploads_folder(settings))
    end = importer._end

    def end_then_lose_the_database(job, report, *rest):
        end(job, report, *rest)
        raise OperationalError("the database restarts before the commit")

    monkeypatch.setattr(importer, "_end", end_then_lose_the_database)
    with pytest.raises(OperationalError):
        importer.run_import(ImportJob.objects.get(pk=job_id))
    assert files_in(uploads_folder(settings)) == uploads and files_in(media) == []
    assert not Product.objects.exists()


def test_cleanups_the_storage_refuses_go_on_with_the_rest_and_retry(merchant, media, settings,
                                                                   django_capture_on_commit_callbacks):
    """A read-only upload folder: retention keeps the refused job's names for the next run and removes the
    others; a refused image delete is counted and retried, the others are done. Nothing raises."""
    api = client_for(merchant.user)
    jobs = [post(api, HEADER + row(f"A-{n}", image)).json()["id"] for n, image in enumerate(["red.png", "blue.png"])]
    for job_id in jobs:
        importer.run_import(ImportJob.objects.get(pk=job_id))
    ImportJob.objects.update(ended_at=timezone.now() - timedelta(days=30))
    refused = ImportJob.objects.get(pk=jobs[0]).manifest.name
    faulty(settings, "p2w_uploads", fail=["delete"], error="EROFS", match=refused.rsplit("/", 2)[-2])
    assert tasks.cleanup_storage()["uploads"] == 1
    assert ImportJob.objects.get(pk=jobs[0]).manifest.name == refused
    assert ImportJob.objects.get(pk=jobs[1]).files_removed_at is not None

    names = sorted(ProductImage.objects.values_list("file", flat=True), key=lambda name: "blue" not in name)
    faulty(settings, "default", fail=["delete"], error="EACCES", match="blue")
    with django_capture_on_commit_callbacks(execute=True):
        Product.objects.all().delete()  # their image files are deleted once that commits
    assert list(FileDeletion.objects.values_list("name", "attempts", "last_error")) == [
        (names[0], 1, "PermissionError: [Errno 13] Permission denied: " f"'{Path(media) / names[0]}'")]
    assert files_in(media) == [names[0]]
    FileDeletion.objects.update(created_at=timezone.now() - product_images.RETRY_AFTER - timedelta(seconds=1))
    assert tasks.cleanup_storage() == {"uploads": 0, "image_files": 0}  # still refused: counted, not stuck
    assert FileDeletion.objects.get().attempts == 2
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                         "p2w_uploads": {**settings.STORAGES["p2w_uploads"],
                                         "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {
                                             "location": uploads_folder(settings)}}}
    assert tasks.cleanup_storage() == {"uploads": 1, "image_files": 1}
    assert files_in(media) == [] and files_in(uploads_folder(settings)) == []


@pytest.mark.worker
def test_an_import_on_a_worker_whose_disk_is_full_fails_saying_why(start_worker, settings, tmp_path,
                                                                   transactional_db, django_user_model):
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media
    start_worker(queues=[settings.P2W_SEARCH["BULK_QUEUE"]],
                 env={"P2W_TEST_MEDIA_ROOT": str(media), "DJANGO_SETTINGS_MODULE": "tests.fault_settings",
                      "P2W_TEST_STORAGE_FAULT": "save:ENOSPC:blue"})
    merchant = MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme"))
    api = client_for(merchant.user)
    job_id = post(api, HEADER + row("A-1", "red.png") + row("A-2", "blue.png"), policy="skip").json()["id"]
    wait_for(lambda: ImportJob.objects.get(pk=job_id).state in ImportJob.ENDED, timeout=90, message="the job ended")
    job = ImportJob.objects.get(pk=job_id)
    assert (job.state, job.message) == ("failed", FULL.format("No space left on device"))
    assert not Product.objects.exists() and not ProductImage.objects.exists()
    assert [name for name in files_in(media) if "blue" not in name] == []  # the partial blue.png is orphans.py's


@pytest.mark.worker
def test_a_worker_that_cannot_read_an_image_marks_it_failed_with_the_reason_and_embeds_the_others(
        start_worker, settings, tmp_path, transactional_db):
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media
    start_worker(env={"P2W_TEST_MEDIA_ROOT": str(media), "DJANGO_SETTINGS_MODULE": "tests.fault_settings",
                      "P2W_TEST_STORAGE_FAULT": "open:EACCES:locked"})
    indexing.register_model()
    with transaction.atomic():  # one batch: the files that cannot be read fail alone
        fine = [ProductImageFactory(data=png((30 * n, 90, 200))) for n in range(3)]
        locked = ProductImageFactory(file=ContentFile(png((1, 2, 3)), name="locked.png"))
        vanished = ProductImageFactory(data=png((4, 5, 6)))
        Path(vanished.file.path).unlink()
    wait_for(lambda: not ImageEmbedding.objects.filter(state="pending").exists(), timeout=90,
             message="every image embedded or failed")
    rows = {row.image_id: row for row in ImageEmbedding.objects.all()}
    assert sorted(rows) == sorted(image.pk for image in [*fine, locked, vanished])
    assert all(rows[image.pk].state == "ready" for image in fine)
    assert (rows[locked.pk].state, rows[locked.pk].error) == (
        "failed", f"image file cannot be read ({locked.file.name}): Permission denied")
    assert (rows[vanished.pk].state, rows[vanished.pk].error) == (
        "failed", f"image file is missing from storage ({vanished.file.name})")

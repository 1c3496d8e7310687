"""What happens to uploaded and product files over time: private, downloadable by their owner, deleted when due."""

import io
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage, default_storage, storages
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from p2w_search import doctor, indexing, orphans, product_images, status, tasks
from p2w_search.models import FileDeletion, ImageEmbedding, ImportJob, ProductImage
from p2w_search.uploads import importer, retention
from shop_demo.catalog.models import Product
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory, png, post_catalog, token_client
from tests.hostile import BLUE, HEADER, RED, SECRET, jpeg_with_gps_and_appended_zip, row, zip_bytes


@pytest.fixture
def merchant(db, django_user_model):
    return MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme"))


client_for = token_client


def upload(client, manifest, files=(("red.png", RED), ("blue.png", BLUE)), **options):
    """POST an upload and run its job here; return the job's final answer."""
    response = post_catalog(client, manifest, zip_bytes(list(files)), **options)
    assert response.status_code == 202, response.content
    importer.run_import(ImportJob.objects.get(pk=response.json()["id"]))
    return client.get(response.json()["url"]).json()


def media_files(media):
    return sorted(str(p.relative_to(media)) for p in Path(media).rglob("*") if p.is_file())


def test_uploads_are_kept_out_of_public_media(merchant, media):
    answer = upload(client_for(merchant.user), HEADER + row("A-1"))
    job = ImportJob.objects.get(pk=answer["id"])
    assert not default_storage.exists(job.manifest.name) and not default_storage.exists(job.archive.name)
    assert storages["p2w_uploads"].exists(job.manifest.name)
    assert media_files(media) == [ProductImage.objects.get().file.name]  # only the served product image
    assert APIClient().get(f"/media/{job.manifest.name}").status_code == 404


def test_a_product_images_public_name_cannot_be_guessed_from_the_merchants_file_name(merchant, media):
    """It was p2w/images/YYYY/MM/red.png: the image of a product no page shows yet (unlisted) was at a URL anyone
    could guess from the merchant's naming."""
    client = client_for(merchant.user)
    upload(client, HEADER + row("A-1") + row("A-2", images="blue.png"))
    Product.objects.filter(sku="A-2").update(listed=False)
    upload(client, HEADER + row("A-3", images="red.png"), files=(("red.png", BLUE),))
    names = dict(ProductImage.objects.values_list("product__sku", "file"))
    month = f"p2w/images/{timezone.now():%Y/%m}/"
    for sku, stem in (("A-1", "red"), ("A-2", "blue"), ("A-3", "red")):
        assert re.fullmatch(re.escape(f"{month}{stem}-") + "[0-9a-f]{16}" + re.escape(".png"), names[sku]), names
    assert names["A-1"] != names["A-3"]
    assert media_files(media) == sorted(names.values())


def test_only_the_owner_and_staff_download_an_upload(merchant, media, django_user_model, client):
    manifest = HEADER + row("A-1") + row("A-2", price="cheap")
    answer = upload(client_for(merchant.user), manifest)
    files = f"/api/imports/{answer['id']}/files/"
    owner = client_for(merchant.user).get(files + "manifest/")
    assert owner.status_code == 200 and b"".join(owner.streaming_content).decode() == manifest
    rival = MerchantFactory(slug="rival", user=django_user_model.objects.create_user("rival"))
    for name in ("manifest", "archive", "rejected-rows"):
        assert client_for(rival.user).get(files + f"{name}/").status_code == 404
    assert APIClient().get(files + "manifest/").status_code == 401
    staff = django_user_model.objects.create_user("staff", is_staff=True, is_superuser=True, password="pw")
    assert client_for(staff).get(files + "archive/").status_code == 200
    client.force_login(staff)
    admin = client.get(f"/admin/p2w_search/importjob/{answer['id']}/files/rejected-rows/")
    assert admin.status_code == 200 and b"price: A valid number is required." in b"".join(admin.streaming_content)
    client.force_login(merchant.user)  # a merchant is no staff member
    assert client.get(f"/admin/p2w_search/importjob/{answer['id']}/files/manifest/").status_code == 302


def test_uploads_are_deleted_after_their_retention(merchant, media):
    api = client_for(merchant.user)
    old, recent = (ImportJob.objects.get(pk=upload(api, HEADER + row(sku), full_sync="true", confirm_unlist="0")["id"])
                   for sku in ("A-1", "A-2"))
    ImportJob.objects.filter(pk=old.pk).update(ended_at=timezone.now() - timedelta(days=8))
    names = [old.manifest.name, old.archive.name, old.listed_at_upload.name]  # a full sync keeps what was listed
    assert all(storages["p2w_uploads"].exists(name) for name in names)

    assert tasks.cleanup_storage() == {"uploads": 1, "image_files": 0}  # what beat runs every hour
    old.refresh_from_db()
    assert not any(storages["p2w_uploads"].exists(name) for name in names)
    assert (old.manifest.name, old.archive.name, old.listed_at_upload.name, old.files_removed_at is not None) == (
        "", "", "", True)
    response = api.get(f"/api/imports/{old.pk}/files/manifest/")
    assert response.status_code == 404 and "deleted on" in response.json()["detail"]
    assert api.get(f"/api/imports/{recent.pk}/files/manifest/").status_code == 200
    assert retention.remove_expired_uploads() == 0


def test_the_demo_runs_the_cleanup_on_beat():
    from shop_demo import settings as demo

    entry = demo.CELERY_BEAT_SCHEDULE["p2w-cleanup-storage"]
    assert entry["task"] == "p2w_search.tasks.cleanup_storage" and entry["options"] == {"queue": "p2w_bulk"}


def test_a_replaced_image_file_is_deleted_and_no_longer_served(merchant, media, django_capture_on_commit_callbacks):
    api = client_for(merchant.user)
    upload(api, HEADER + row("A-1"))
    before = ProductImage.objects.get().file.name
    with django_capture_on_commit_callbacks(execute=True):
        upload(api, HEADER + row("A-1", "blue.png"))
    after = ProductImage.objects.get().file.name
    assert after != before and media_files(media) == [after]
    assert APIClient().get(f"/media/{before}").status_code == 404


def test_deleting_a_product_deletes_its_image_files(merchant, media, django_capture_on_commit_callbacks):
    api = client_for(merchant.user)
    upload(api, HEADER + row("A-1", "red.png;blue.png") + row("A-2"))
    product = Product.objects.get(sku="A-1")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/products/{product.pk}/").status_code == 204
    assert media_files(media) == [ProductImage.objects.get(product__sku="A-2").file.name]


@pytest.fixture
def refusing_storage(monkeypatch):
    """File storages refuse every delete until ``.restore()``, as an object store out of reach would."""
    delete = FileSystemStorage.delete

    def refuse(self, name):
        raise OSError("the object store is out of reach")

    monkeypatch.setattr(FileSystemStorage, "delete", refuse)

    class Refusing:
        def restore(self):
            monkeypatch.setattr(FileSystemStorage, "delete", delete)
    return Refusing()


def age_file_deletions():
    """Make every recorded deletion older than the cleanup's wait, as an hour of beat would."""
    FileDeletion.objects.update(created_at=F("created_at") - product_images.RETRY_AFTER - timedelta(seconds=1))


def test_an_image_file_the_storage_refused_to_delete_is_deleted_by_the_next_cleanup(
        merchant, media, refusing_storage, django_capture_on_commit_callbacks):
    api = client_for(merchant.user)
    upload(api, HEADER + row("A-1", "red.png;blue.png") + row("A-2"))
    product = Product.objects.get(sku="A-1")
    names = sorted(product.p2w_images.values_list("file", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/products/{product.pk}/").status_code == 204
    assert set(names) <= set(media_files(media)) and APIClient().get(f"/media/{names[0]}").status_code == 200
    assert sorted(FileDeletion.objects.values_list("name", "attempts", "last_error")) == [
        (name, 1, "OSError: the object store is out of reach") for name in names]

    assert tasks.cleanup_storage() == {"uploads": 0, "image_files": 0}  # recorded a moment ago: left to its commit
    age_file_deletions()
    assert tasks.cleanup_storage() == {"uploads": 0, "image_files": 0}  # the storage still refuses
    assert list(FileDeletion.objects.values_list("attempts", flat=True)) == [2, 2]
    found = [f for f in doctor.findings(status.index_status()) if f.id == "p2w_search.H011"]
    assert [f.msg for f in found] == ["2 files of deleted or replaced images are still in storage, the oldest due "
                                      "5 min ago, and still served. Last error: OSError: the object store is out of "
                                      "reach"]

    refusing_storage.restore()
    assert tasks.cleanup_storage() == {"uploads": 0, "image_files": 2}
    assert media_files(media) == [ProductImage.objects.get(product__sku="A-2").file.name]
    assert APIClient().get(f"/media/{names[0]}").status_code == 404 and not FileDeletion.objects.exists()
    assert "p2w_search.H011" not in [f.id for f in doctor.findings(status.index_status())]


def test_a_deletion_whose_process_stopped_before_the_delete_is_finished_by_the_cleanup(
        merchant, media, django_capture_on_commit_callbacks):
    api = client_for(merchant.user)
    upload(api, HEADER + row("A-1") + row("A-2"))
    name = ProductImage.objects.get(product__sku="A-1").file.name
    with django_capture_on_commit_callbacks(execute=False):  # committed; the process dies before its callbacks
        assert api.delete(f"/api/products/{Product.objects.get(sku='A-1').pk}/").status_code == 204
    assert name in media_files(media)
    assert list(FileDeletion.objects.values_list("name", "attempts")) == [(name, 0)]
    age_file_deletions()
    assert tasks.cleanup_storage()["image_files"] == 1
    assert name not in media_files(media) and not FileDeletion.objects.exists()


def test_a_deletion_that_rolls_back_records_nothing_and_keeps_the_file(merchant, media):
    api = client_for(merchant.user)
    upload(api, HEADER + row("A-1"))
    image = ProductImage.objects.get()
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.get(sku="A-1").delete()
        assert FileDeletion.objects.count() == 1
        raise RuntimeError("the shop's own code fails after the delete")
    assert not FileDeletion.objects.exists() and ProductImage.objects.get() == image
    assert media_files(media) == [image.file.name]


def test_the_cleanup_keeps_a_file_that_an_image_uses_again(merchant, media):
    api = client_for(merchant.user)
    upload(api, HEADER + row("A-1"))
    name = ProductImage.objects.get().file.name
    FileDeletion.objects.create(name=name)
    age_file_deletions()
    assert tasks.cleanup_storage()["image_files"] == 1  # done: nothing to delete
    assert media_files(media) == [name] and not FileDeletion.objects.exists()


def test_an_upload_the_storage_refused_to_delete_keeps_its_names_for_the_next_cleanup(merchant, media,
                                                                                      refusing_storage):
    api = client_for(merchant.user)
    job = ImportJob.objects.get(pk=upload(api, HEADER + row("A-1"))["id"])
    ImportJob.objects.filter(pk=job.pk).update(ended_at=timezone.now() - timedelta(days=8))
    names = [job.manifest.name, job.archive.name]
    assert retention.remove_expired_uploads() == 0
    job.refresh_from_db()
    assert [job.manifest.name, job.archive.name] == names and job.files_removed_at is None
    assert all(storages["p2w_uploads"].exists(name) for name in names)

    refusing_storage.restore()
    assert retention.remove_expired_uploads() == 1
    assert not any(storages["p2w_uploads"].exists(name) for name in names)


def test_the_files_of_an_import_that_did_not_commit_are_deleted_later_if_the_storage_refused(
        merchant, media, monkeypatch, refusing_storage):
    api = client_for(merchant.user)

    def crash(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(importer.indexing, "queue_images", crash)  # after the chunk's files are written
    with pytest.raises(RuntimeError):
        upload(api, HEADER + row("A-1", "red.png;blue.png") + row("A-2"))
    written = media_files(media)
    assert len(written) == 3 and not ProductImage.objects.exists()
    assert sorted(FileDeletion.objects.values_list("name", flat=True)) == written

    refusing_storage.restore()
    age_file_deletions()
    assert tasks.cleanup_storage()["image_files"] == 3
    assert media_files(media) == [] and not FileDeletion.objects.exists()


def test_the_files_of_a_failed_import_are_deleted_when_the_database_cannot_record_them(merchant, media,
                                                                                         monkeypatch):
    api = client_for(merchant.user)

    def database_down(*args, **kwargs):
        raise OperationalError("the database restarts")

    monkeypatch.setattr(importer.indexing, "queue_images", database_down)  # after the chunk's files are written
    monkeypatch.setattr(product_images, "_record", database_down)
    with pytest.raises(OperationalError):
        upload(api, HEADER + row("A-1", "red.png;blue.png"))
    assert media_files(media) == [] and not FileDeletion.objects.exists()


def test_an_import_that_does_not_commit_leaves_no_file_behind(merchant, media, monkeypatch):
    api = client_for(merchant.user)
    many = HEADER + "".join(row(f"A-{n}", "red.png;blue.png") for n in range(6))
    answer = upload(api, many + row("A-9", price="cheap"), policy="reject")
    assert answer["state"] == "rejected" and media_files(media) == []

    def crash(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(importer.indexing, "queue_images", crash)  # after the chunk's files are written
    with pytest.raises(RuntimeError):
        upload(api, many)
    assert media_files(media) == [] and not ProductImage.objects.exists()


def test_a_failed_import_says_so_without_internals(merchant, media, monkeypatch):
    api = client_for(merchant.user)
    handle = io.BytesIO((HEADER + row("A-1")).encode())
    handle.name = "c.csv"
    archive = io.BytesIO(zip_bytes([("red.png", RED)]))
    archive.name = "i.zip"
    job_id = api.post("/api/imports/", {"manifest": handle, "archive": archive}, format="multipart").json()["id"]
    monkeypatch.setattr(importer, "_import", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        tasks.run_import(job_id)  # the task's body, as a worker runs it
    job = ImportJob.objects.get(pk=job_id)
    assert job.state == "failed" and job.ended_at is not None
    assert job.message == ("The import failed because of an error on the server; nothing was imported. The error is "
                           "logged; try again, or tell the shop's staff if it happens again.")


def test_a_poll_is_bounded_and_costs_the_same_for_any_job(merchant, media):
    api = client_for(merchant.user)
    lines = "\n".join('{"sku": "J-%d", %s}' % (n, ", ".join(f'"x{c}": 1' for c in range(292))) for n in range(300))
    handle = io.BytesIO(lines.encode())
    handle.name = "c.jsonl"
    response = api.post("/api/imports/", {"manifest": handle}, format="multipart")
    importer.run_import(ImportJob.objects.get(pk=response.json()["id"]))
    poll = api.get(response.json()["url"])
    body = poll.json()
    assert (body["rows_rejected"], body["errors_total"], len(body["errors"])) == (300, 1500, 100)
    assert body["errors"][0]["reason"] == "unknown fields: 'x0', 'x1', 'x10', 'x100', 'x101' and 287 more"
    assert len(poll.content) < 20_000

    def queries_of_poll(rows):
        answer = upload(api, HEADER + "".join(row(f"Q{rows}-{n}", "red.png;blue.png") for n in range(rows)))
        with CaptureQueriesContext(connection) as queries:
            assert api.get(f"/api/imports/{answer['id']}/").json()["images_total"] == 2 * rows
        return len(queries)

    assert queries_of_poll(2) == queries_of_poll(40)


def test_a_poll_after_embedding_reads_the_stored_counts(merchant, media):
    api = client_for(merchant.user)
    model = indexing.register_model()
    answer = upload(api, HEADER + row("A-1", "red.png;blue.png"))
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    done = api.get(answer["url"]).json()
    assert (done["images_total"], done["images_embedded"], done["images_failed"]) == (2, 2, 0)
    ImageEmbedding.objects.all().delete()  # the counts of the finished job no longer need the rows
    assert api.get(answer["url"]).json()["images_embedded"] == 2


def test_an_image_added_in_the_admin_is_queued_and_served_without_metadata(admin_client, media,
                                                                             django_capture_on_commit_callbacks):
    model = indexing.register_model()
    product = ProductFactory()
    photo = io.BytesIO(jpeg_with_gps_and_appended_zip())
    photo.name = "holiday.jpg"
    inline = {"embeddings-TOTAL_FORMS": 0, "embeddings-INITIAL_FORMS": 0}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/p2w_search/productimage/add/",
                                     {"product": product.pk, "file": photo, "position": 0, **inline})
    assert response.status_code == 302, response.context["adminform"].form.errors
    image = ProductImage.objects.get()
    assert ImageEmbedding.objects.get(image=image, model=model).state == "pending"
    with default_storage.open(image.file.name, "rb") as handle:
        assert SECRET.encode() not in handle.read()
    svg = io.BytesIO(b"<svg/>")
    svg.name = "logo.svg"
    refused = admin_client.post("/admin/p2w_search/productimage/add/",
                                {"product": product.pk, "file": svg, "position": 1, **inline})
    assert "This file cannot be used: not a recognised image format." in refused.content.decode()


def test_the_sweep_queues_images_that_entered_without_a_save(db, media):
    model = indexing.register_model()
    product = ProductFactory()
    stored = default_storage.save("p2w/images/raw.png", io.BytesIO(png()))
    image, = ProductImage.objects.bulk_create([ProductImage(product=product, file=stored, sha256="x")])
    ProductImage.objects.filter(pk=image.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert indexing.sweep_pending() == 1
    assert ImageEmbedding.objects.get(image=image, model=model).queued_at is not None
    assert indexing.sweep_pending() == 0  # queued now: not again before SWEEP_AFTER


def test_wait_finishes_once_an_admin_removed_an_image(db, media, capsys):
    images = [ProductImageFactory(data=png((60 * n, 90, 90))) for n in range(3)]
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.filter(image__in=images[:2]).values_list("pk",
                                                                                                         flat=True)))
    with pytest.raises(CommandError, match="no image was embedded for 1 s and 1 are left; is a worker running"):
        call_command("p2w_index", "wait", stall=1)
    indexing.remove_from_index(images[2:])
    call_command("p2w_index", "wait", timeout=5)
    call_command("p2w_index", "status")
    out = capsys.readouterr().out
    assert "2 ready, 0 failed" in out
    assert "2 product images in the index (1 removed by an admin)" in out
    assert f"[{model.pk}] {model.key} (32d, serving): 2 ready, 0 pending, 0 failed, 0 missing" in out


def stored(name, *, hours_ago, storage=default_storage, folder=orphans.IMAGE_FOLDER):
    """A file in ``folder`` of ``storage`` that no row refers to, as a killed import leaves it, ``hours_ago`` old."""
    name = storage.save(f"{folder}/2026/11/{name}", io.BytesIO(png()))
    then = (timezone.now() - timedelta(hours=hours_ago)).timestamp()
    os.utime(storage.path(name), (then, then))
    return name


def test_the_daily_sweep_deletes_old_files_that_no_image_refers_to_and_nothing_else(merchant, media):
    api = client_for(merchant.user)
    upload(api, HEADER + row("A-1"))
    image = ProductImage.objects.get()
    os.utime(default_storage.path(image.file.name), (0, 0))  # referenced: kept however old
    orphan, recent = stored("killed-import.png", hours_ago=2), stored("being-saved.png", hours_ago=0.5)
    assert tasks.sweep_orphan_files() == {"images": 1, "uploads": 0}
    assert media_files(media) == sorted([image.file.name, recent])
    assert default_storage.exists(image.file.name) and not default_storage.exists(orphan)
    assert not FileDeletion.objects.exists()

    # An import that started 3 hours ago and still runs may refer to any file written since.
    ImportJob.objects.create(merchant_key=str(merchant.pk), state=ImportJob.State.RUNNING,
                             started_at=timezone.now() - timedelta(hours=3))
    written = stored("running-import.png", hours_ago=2)
    assert tasks.sweep_orphan_files() == {"images": 0, "uploads": 0}
    assert written in media_files(media)


def test_the_file_of_a_save_that_rolled_back_is_deleted_by_the_daily_sweep(merchant, media):
    product = ProductFactory(merchant=merchant)
    with pytest.raises(RuntimeError), transaction.atomic():
        ProductImageFactory(product=product)
        raise RuntimeError("the shop's own code fails after the save")
    [left] = media_files(media)  # Django wrote the file before the row that rolled back
    os.utime(Path(media) / left, (0, 0))
    assert tasks.sweep_orphan_files()["images"] == 1 and media_files(media) == []


def test_the_daily_sweep_deletes_old_uploads_that_no_job_refers_to(merchant, media):
    api = client_for(merchant.user)
    job = ImportJob.objects.get(pk=upload(api, HEADER + row("A-1"))["id"])
    uploads = storages["p2w_uploads"]
    for name in (job.manifest.name, job.archive.name):
        os.utime(uploads.path(name), (0, 0))  # referenced by its job: kept until the retention
    orphan = stored("catalog.csv", hours_ago=2, storage=uploads, folder=orphans.UPLOAD_FOLDER)
    recent = stored("images.zip", hours_ago=0.5, storage=uploads, folder=orphans.UPLOAD_FOLDER)
    assert tasks.sweep_orphan_files() == {"images": 0, "uploads": 1}
    assert not uploads.exists(orphan) and uploads.exists(recent)
    assert uploads.exists(job.manifest.name) and uploads.exists(job.archive.name)


def test_the_demo_runs_the_orphan_sweep_daily_on_beat():
    from shop_demo import settings as demo

    entry = demo.CELERY_BEAT_SCHEDULE["p2w-sweep-orphan-files"]
    assert entry == {"task": "p2w_search.tasks.sweep_orphan_files", "schedule": 86400.0,
                     "options": {"queue": "p2w_bulk"}}

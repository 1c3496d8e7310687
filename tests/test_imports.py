"""Merchants' catalog uploads: idempotent upserts, row errors under each policy, unsafe archives, ownership."""

import io
import json
import threading
import time
import zipfile
from decimal import Decimal

import psycopg
import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.models import ImageEmbedding, ImportJob, ProductImage
from p2w_search.uploads import importer
from shop_demo.catalog.imports import ProductImportSerializer
from shop_demo.catalog.models import Merchant, Product
from tests.factories import MerchantFactory, ProductFactory, png

HEADER = "sku,title,description,category,price,currency,in_stock,images\n"
GOOD = HEADER + (
    "TEE-1,Red tee,Soft cotton,t-shirt,19.99,EUR,true,red.png\n"
    "MUG-1,Blue mug,,mug,9.50,EUR,false,blue.png;blue-side.png\n"
)
IMAGES = {"red.png": png((220, 20, 20)), "blue.png": png((20, 20, 220)), "blue-side.png": png((20, 60, 200))}


def zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    buffer.seek(0)
    buffer.name = "images.zip"
    return buffer


def named(data, name):
    handle = io.BytesIO(data.encode() if isinstance(data, str) else data)
    handle.name = name
    return handle


@pytest.fixture
def merchant(db, django_user_model):
    user = django_user_model.objects.create_user("acme", password="pw")
    return MerchantFactory(slug="acme", user=user)


@pytest.fixture
def api(merchant):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")
    return client


def upload(api, manifest=GOOD, files=IMAGES, name="catalog.csv", **options):
    """POST an upload and run its job here (the worker's part; tests/test_workers.py runs a real one)."""
    response = api.post("/api/imports/", {"manifest": named(manifest, name), "archive": zipped(files), **options},
                        format="multipart")
    assert response.status_code == 202, response.content
    job = importer.run_import(ImportJob.objects.get(pk=response.json()["id"]))
    return job, api.get(response.json()["url"]).json()


def test_upload_creates_products_and_queues_their_images(api, merchant, media):
    job, progress = upload(api)
    assert progress["state"] == "done" and progress["rows_accepted"] == 2 and progress["images_total"] == 3
    mug = Product.objects.get(merchant=merchant, sku="MUG-1")
    assert (mug.title, str(mug.price), mug.in_stock) == ("Blue mug", "9.50", False)
    assert list(mug.p2w_images.values_list("position", flat=True)) == [0, 1]


def test_the_same_catalog_twice_changes_and_embeds_nothing(api, merchant, media):
    upload(api)
    before = list(ProductImage.objects.order_by("pk").values_list("pk", "sha256", "file"))
    job, progress = upload(api)
    assert progress["images_total"] == 0 and not job.images.exists()
    assert list(ProductImage.objects.order_by("pk").values_list("pk", "sha256", "file")) == before


def test_a_changed_image_is_embedded_again(api, merchant, media):
    upload(api)
    job, _ = upload(api, files={**IMAGES, "red.png": png((200, 0, 90))})
    changed = ProductImage.objects.get(product__sku="TEE-1")
    assert list(job.images.values_list("pk", flat=True)) == [changed.pk]


def test_a_product_with_fewer_images_loses_the_ones_past_the_end(api, merchant, media):
    indexing.register_model()
    upload(api)
    side = ProductImage.objects.get(product__sku="MUG-1", position=1)
    assert ImageEmbedding.objects.filter(image_id=side.pk).exists()
    job, progress = upload(api, manifest=GOOD.replace("blue.png;blue-side.png", "blue.png"))
    assert progress["images_total"] == 0  # the first image is unchanged: nothing to embed
    assert list(ProductImage.objects.filter(product__sku="MUG-1").values_list("position", flat=True)) == [0]
    assert not ImageEmbedding.objects.filter(image_id=side.pk).exists()


BAD = HEADER + (
    "A-1,Fine,,mug,5.00,EUR,true,red.png\n"
    "A-2,Bad price,,mug,cheap,EUR,true,red.png\n"
    "A-3,No image,,mug,5.00,EUR,true,nowhere.png\n"
    "A-4,Broken image,,mug,5.00,EUR,true,broken.png\n"
    "A-5,First,,mug,5.00,EUR,true,red.png\n"
    "A-5,Again,,mug,5.00,EUR,true,red.png\n"
)
BAD_FILES = {**IMAGES, "broken.png": b"definitely not a png"}


def test_bad_rows_are_skipped_with_row_numbers_and_reasons(api, merchant, media):
    job, progress = upload(api, manifest=BAD, files=BAD_FILES, policy="skip")
    assert progress["state"] == "done" and progress["rows_accepted"] == 1 and progress["rows_rejected"] == 5
    errors = {(e["row"], e["field"]): e["reason"] for e in progress["errors"]}
    assert errors == {
        (3, "price"): "A valid number is required.",
        (4, "images"): "missing image 'nowhere.png'",
        (5, "images"): "'broken.png': not a recognised image format",
        # Which of two rows of one SKU is meant is unknown: neither is imported.
        (6, "sku"): "sku 'A-5' is on rows 6, 7; give each product once",
        (7, "sku"): "sku 'A-5' is on rows 6, 7; give each product once",
    }
    assert progress["errors_total"] == 5
    assert list(Product.objects.filter(merchant=merchant).values_list("sku", flat=True)) == ["A-1"]


def test_a_price_python_would_read_as_another_number_is_a_bad_row(api, merchant, media):
    """Decimal("1_5") is 15, Decimal("1e3") 1000, and digits of other scripts count: each was imported so."""
    manifest = HEADER + "".join(f"P-{n},Mug,,mug,{price},EUR,true,red.png\n" for n, price in enumerate(
        ["1_5", "1e3", "\u0661\u0665", "1.5", " 7 ", ".5", "2."]))
    job, progress = upload(api, manifest=manifest, policy="skip")
    assert {(e["row"], e["field"]): e["reason"] for e in progress["errors"]} == {
        (row, "price"): "A valid number is required." for row in (2, 3, 4)}
    assert dict(Product.objects.values_list("sku", "price")) == {
        "P-3": Decimal("1.50"), "P-4": Decimal("7.00"), "P-5": Decimal("0.50"), "P-6": Decimal("2.00")}


def test_a_second_upload_updates_and_relists_the_products_it_names(api, merchant, media):
    """The demo's ``save_rows`` updates a chunk's existing products in place and creates the new ones."""
    upload(api)
    tee, mug = Product.objects.get(sku="TEE-1"), Product.objects.get(sku="MUG-1")
    Product.objects.filter(pk=mug.pk).update(listed=False)
    again = HEADER + ("NEW-1,Green cap,,cap,7.00,EUR,true,red.png\n"
                      "MUG-1,Blue mug XL,Bigger,mug,12.00,USD,true,blue.png;blue-side.png\n")
    job, progress = upload(api, manifest=again)
    assert progress["state"] == "done" and progress["rows_accepted"] == 2
    mug.refresh_from_db()
    assert (mug.title, mug.description, str(mug.price), mug.currency, mug.in_stock, mug.listed) == (
        "Blue mug XL", "Bigger", "12.00", "USD", True, True)
    assert Product.objects.get(pk=tee.pk).title == "Red tee"  # not named: untouched (no full sync)
    assert Product.objects.get(sku="NEW-1").p2w_images.count() == 1


@pytest.mark.parametrize("manifest", [
    # A price update that leaves the optional columns out ...
    "sku,title,category,price,images\nMUG-1,Blue mug,mug,11.00,blue.png\nNEW-1,Green cap,cap,7.00,red.png\n",
    # ... or leaves their cells empty; and the same as JSON Lines.
    HEADER + "MUG-1,Blue mug,,mug,11.00,,,blue.png\nNEW-1,Green cap,,cap,7.00,,,red.png\n",
    '{"sku": "MUG-1", "title": "Blue mug", "category": "mug", "price": "11.00", "images": ["blue.png"]}\n'
    '{"sku": "NEW-1", "title": "Green cap", "category": "cap", "price": "7.00", "images": ["red.png"]}\n',
])
def test_a_column_left_out_keeps_an_existing_products_value_and_a_new_one_gets_the_default(api, merchant, media,
                                                                                           manifest):
    upload(api)
    Product.objects.filter(sku="MUG-1").update(description="Sold out for now", currency="USD", in_stock=False)
    name = "catalog.jsonl" if manifest.startswith("{") else "catalog.csv"
    job, progress = upload(api, manifest=manifest, name=name)
    assert progress["state"] == "done" and progress["rows_accepted"] == 2, progress
    fields = ("description", "currency", "in_stock")
    assert Product.objects.values_list("price", *fields).get(sku="MUG-1") == (Decimal("11.00"), "Sold out for now",
                                                                              "USD", False)
    assert Product.objects.values_list(*fields).get(sku="NEW-1") == ("", "EUR", True)


class RowByRowSerializer(ProductImportSerializer):
    """A shop's serializer without ``save_rows``: a new serializer and ``save`` for each row."""

    save_rows = None

    def save(self, *, merchant):
        values = {key: value for key, value in self.validated_data.items() if key not in ("sku", "images")}
        product, _ = Product.objects.update_or_create(merchant=merchant, sku=self.validated_data["sku"],
                                                      defaults={**values, "listed": True})
        return product


def test_rows_saved_one_by_one_get_the_same_answers_as_rows_saved_together(api, merchant, media, settings):
    _, together = upload(api, manifest=BAD, files=BAD_FILES, policy="skip")
    Product.objects.all().delete()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_SERIALIZER": "tests.test_imports.RowByRowSerializer"}
    _, one_by_one = upload(api, manifest=BAD, files=BAD_FILES, policy="skip")
    answer = ("state", "rows_accepted", "rows_rejected", "errors", "errors_total", "message")
    assert {key: one_by_one[key] for key in answer} == {key: together[key] for key in answer}
    assert list(Product.objects.filter(merchant=merchant).values_list("sku", flat=True)) == ["A-1"]


class MiscountingSerializer(ProductImportSerializer):
    @classmethod
    def save_rows(cls, merchant, rows):
        return super().save_rows(merchant, rows)[:-1]


def test_a_save_rows_that_loses_a_row_fails_the_import_and_keeps_nothing(api, merchant, media, settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_SERIALIZER": "tests.test_imports.MiscountingSerializer"}
    with pytest.raises(Exception, match=r"MiscountingSerializer.save_rows returned 1 products for 2 rows"):
        upload(api)
    assert not Product.objects.exists() and not ProductImage.objects.exists()
    assert not [path for path in media.rglob("*") if path.is_file()]  # the served copies were deleted again


def test_reject_policy_writes_nothing(api, merchant, media):
    job, progress = upload(api, manifest=BAD, files=BAD_FILES, policy="reject")
    assert progress["state"] == "rejected" and progress["rows_accepted"] == 0 and len(progress["errors"]) == 5
    assert not Product.objects.filter(merchant=merchant).exists() and not ProductImage.objects.exists()


def test_json_lines_manifest(api, merchant, media):
    lines = "\n".join(json.dumps(row) for row in [
        {"sku": "J-1", "title": "Cap", "category": "cap", "price": "12", "images": ["red.png"]},
        {"sku": "J-2", "title": "Boot", "category": "boot", "price": "80", "images": "blue.png;blue-side.png",
         "in_stock": False},
    ])
    job, progress = upload(api, manifest=lines, name="catalog.jsonl")
    assert progress["rows_accepted"] == 2 and not Product.objects.get(sku="J-2").in_stock


def test_full_sync_unlists_what_the_file_no_longer_names(api, merchant, media):
    upload(api)
    tee_only = HEADER + "TEE-1,Red tee,,t-shirt,19.99,EUR,true,red.png\n"
    job, progress = upload(api, manifest=tee_only, full_sync="true")  # 1 of 2 listed: more than 20 %
    assert progress["state"] == "rejected" and progress["products_unlisted"] == 0
    assert progress["message"] == (
        "Full sync refused: it would unlist 1 of your 2 listed products, and more than the 20% a sync may unlist "
        "unconfirmed. Nothing was changed. To do it on purpose, upload the file again with full_sync=true and "
        "confirm_unlist=1.")
    assert Product.objects.get(sku="MUG-1").listed
    job, progress = upload(api, manifest=tee_only, full_sync="true", confirm_unlist="1")
    assert progress["state"] == "done" and progress["products_unlisted"] == 1
    assert progress["unlisted_skus"] == ["MUG-1"]
    assert not Product.objects.get(sku="MUG-1").listed
    assert APIClient().get(f"/api/products/{Product.objects.get(sku='MUG-1').pk}/").status_code == 404


def test_images_as_multipart_files(api, merchant, media):
    response = api.post("/api/imports/", {"manifest": named(HEADER + "M-1,Tee,,t-shirt,5,EUR,true,red.png\n",
                                                            "c.csv"), "images": [named(IMAGES["red.png"], "red.png")]},
                        format="multipart")
    assert response.status_code == 202, response.content
    assert importer.run_import(ImportJob.objects.get(pk=response.json()["id"])).rows_accepted == 1


def test_zip_with_path_traversal_is_refused(api, media):
    response = api.post("/api/imports/", {"manifest": named(GOOD, "c.csv"),
                                          "archive": zipped({"../x.jpg": IMAGES["red.png"]})}, format="multipart")
    assert response.status_code == 400
    assert response.json()["archive"] == ["The archive is refused: unsafe path in the archive: '../x.jpg'."]


def test_zip_bomb_is_refused_without_inflating_it(api, media):
    response = api.post("/api/imports/", {"manifest": named(GOOD, "c.csv"),
                                          "archive": zipped({"red.png": b"\0" * (5 * 1024 * 1024)})},
                        format="multipart")
    assert response.status_code == 400
    assert "which only a zip bomb is" in response.json()["archive"][0]


@pytest.mark.parametrize(("manifest", "name", "reason"), [
    ("a,b\n", "c.txt", "The manifest cannot be used: it must be a .csv or .jsonl file."),
    (b"\xff\xfe\x00bad", "c.csv", "The manifest cannot be used: it is UTF-16 text; save it as UTF-8."),
    (b"sku,title\n\xe9t\xe9,x\n", "c.csv", "The manifest cannot be used: line 2: it is not UTF-8 text."),
    (HEADER.replace("images\n", "images,colour\n"), "c.csv",
     "The manifest cannot be used: unknown column 'colour'; the columns are category, currency, description, "
     "error, images, in_stock, price, sku, title."),
    ("", "c.csv", "The submitted file is empty."),
])
def test_unreadable_manifests_are_refused(api, media, manifest, name, reason):
    response = api.post("/api/imports/", {"manifest": named(manifest, name)}, format="multipart")
    assert response.status_code == 400 and response.json()["manifest"] == [reason]


def test_only_merchants_upload_and_see_their_own_jobs(api, merchant, media, django_user_model):
    job, _ = upload(api)
    assert APIClient().post("/api/imports/", {}).status_code == 401
    shopper = django_user_model.objects.create_user("shopper", password="pw")
    client = APIClient()
    client.force_authenticate(shopper)
    denied = client.post("/api/imports/", {"manifest": named(GOOD, "c.csv")}, format="multipart")
    assert denied.status_code == 403 and "belongs to no merchant" in denied.json()["detail"]
    rival = MerchantFactory(slug="rival", user=django_user_model.objects.create_user("rival", password="pw"))
    client.force_authenticate(rival.user)
    assert client.get(f"/api/imports/{job.pk}/").status_code == 404
    assert client.get("/api/imports/").json()["results"] == []


def test_a_merchant_cannot_change_another_merchants_product(api, merchant, django_user_model):
    theirs = ProductFactory(merchant=MerchantFactory(slug="rival"))
    mine = ProductFactory(merchant=merchant)
    response = api.patch(f"/api/products/{theirs.pk}/", {"title": "mine now"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "Only the merchant that sells this product may change it."
    assert api.patch(f"/api/products/{mine.pk}/", {"title": "renamed"}, format="json").status_code == 200
    assert APIClient().get(f"/api/products/{theirs.pk}/").status_code == 200  # anyone reads
    assert APIClient().patch(f"/api/products/{mine.pk}/", {"title": "x"}, format="json").status_code == 401


def test_anonymous_search_is_rate_limited(db, settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "3/min"}
    client = APIClient()
    codes = [client.get("/api/search/text/", {"q": "red"}).status_code for _ in range(4)]
    assert codes == [503, 503, 503, 429]  # no model serves yet: 503 until the throttle answers first


def test_management_command_imports_files_on_the_server(merchant, media, tmp_path, capsys):
    (tmp_path / "c.csv").write_text(BAD)
    (tmp_path / "i.zip").write_bytes(zipped(BAD_FILES).getvalue())
    call_command("p2w_import", str(tmp_path / "c.csv"), archive=str(tmp_path / "i.zip"), merchant=str(merchant.pk))
    out = capsys.readouterr()
    assert "done; 1 row imported, 1 image queued for embedding, 5 rows skipped" in out.out
    assert "row 3: price: A valid number is required." in out.err
    assert Merchant.objects.get(pk=merchant.pk).products.count() == 1


def test_management_command_shows_what_a_terminal_would_act_on_as_escapes(merchant, media, tmp_path, capsys,
                                                                            monkeypatch):
    """A shop's serializer that echoes a cell in its error put the cell's escape sequences on the terminal."""
    from rest_framework import serializers

    def echo(self, value):
        if value != "mug":
            raise serializers.ValidationError(f'"{value}" is not a valid choice.')
        return value

    monkeypatch.setattr(ProductImportSerializer, "validate_category", echo, raising=False)
    (tmp_path / "c.csv").write_text(HEADER + "A-1,Mug,,\x1b]0;owned\x07\x1b[2J\u202egum,5.00,EUR,true,red.png\n"
                                    + "A-2,Mug,,mug,5.00,EUR,true,red.png\n")
    (tmp_path / "i.zip").write_bytes(zipped(IMAGES).getvalue())
    call_command("p2w_import", str(tmp_path / "c.csv"), archive=str(tmp_path / "i.zip"), merchant=str(merchant.pk),
                 policy="skip")
    out = capsys.readouterr()
    assert 'row 2: category: "\\x1b]0;owned\\x07\\x1b[2J\\u202egum" is not a valid choice.\n' in out.err
    assert not any(ch in out.out + out.err for ch in "\x1b\x07\u202e")
    assert ImportJob.objects.get().errors[0]["reason"].startswith('"\x1b]0;owned')  # stored as sent


def hold_import_lock(database_url, merchant):
    """A connection of another process holding ``merchant``'s import lock, as a worker's import does."""
    holder = psycopg.connect(database_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s, %s)", importer.merchant_lock_key(str(merchant.pk)))
    return holder


def test_management_command_waits_while_the_merchants_other_import_runs(merchant, media, tmp_path, capsys,
                                                                          test_database_url):
    (tmp_path / "c.csv").write_text(BAD)
    (tmp_path / "i.zip").write_bytes(zipped(BAD_FILES).getvalue())
    holder = hold_import_lock(test_database_url, merchant)
    threading.Timer(1.5, holder.close).start()  # the other import ends
    started = time.monotonic()
    call_command("p2w_import", str(tmp_path / "c.csv"), archive=str(tmp_path / "i.zip"), merchant=str(merchant.pk))
    waited = time.monotonic() - started
    out = capsys.readouterr()
    assert f"merchant '{merchant.pk}' has another import running; waiting for it to end" in out.err
    assert waited >= 1.5 and "done; 1 row imported, 1 image queued for embedding, 5 rows skipped" in out.out
    assert Merchant.objects.get(pk=merchant.pk).products.count() == 1


@pytest.mark.django_db(transaction=True)
def test_management_command_reports_its_job_that_a_worker_ran_while_it_waited(merchant, media, tmp_path, capsys,
                                                                              test_database_url):
    """The sweep may send the command's waiting job to a worker, which runs it once the lock is free: not twice."""
    (tmp_path / "c.csv").write_text(BAD)
    (tmp_path / "i.zip").write_bytes(zipped(BAD_FILES).getvalue())
    holder = hold_import_lock(test_database_url, merchant)

    def a_worker_runs_it():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if holder.execute("UPDATE p2w_search_importjob SET state = 'done', ended_at = now(), "
                              "message = 'imported by a worker' WHERE state = 'queued'").rowcount:
                break
            time.sleep(0.1)
        holder.close()

    threading.Thread(target=a_worker_runs_it).start()
    call_command("p2w_import", str(tmp_path / "c.csv"), archive=str(tmp_path / "i.zip"), merchant=str(merchant.pk))
    job = ImportJob.objects.get()
    assert capsys.readouterr().out.strip() == f"import {job.pk}: done; imported by a worker"
    assert Merchant.objects.get(pk=merchant.pk).products.count() == 0  # not imported a second time


def test_image_urls_are_refused_while_fetching_is_off(api, merchant, media):
    job, progress = upload(api, manifest=HEADER + "U-1,Tee,,t-shirt,5,EUR,true,https://cdn.example.com/a.png\n")
    assert progress["errors"] == [{"row": 2, "field": "images", "reason":
                                   "fetching image URLs is turned off on this shop; put the images in the archive"}]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "169.254.169.254", "::1",
                                     "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"])
def test_fetcher_refuses_addresses_that_are_not_public(settings, address):
    from p2w_search.fetching import FetchRefused, fetch_image

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_FETCH_URLS": True}

    def resolve(host, port, type=None):
        return [(None, None, None, None, (address, port))]

    with pytest.raises(FetchRefused, match=f"refused to fetch from {address}: not a public address"):
        fetch_image("https://images.example.com/a.png", resolve=resolve)


def test_fetcher_refuses_other_schemes(settings):
    from p2w_search.fetching import FetchRefused, fetch_image

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_FETCH_URLS": True}
    with pytest.raises(FetchRefused, match="not an http"):
        fetch_image("file:///etc/passwd")


def test_files_sent_under_one_name_are_stored_under_two():
    """Threads write an import's files side by side: one name for two files would let a storage without atomic
    creation (S3, say) keep one of them. Each stored name has 16 random hex digits."""
    from p2w_search.models import image_path

    first, again = image_path(None, "front.png"), image_path(None, "front.png")
    assert first != again and first.rsplit("-", 1)[0] == again.rsplit("-", 1)[0]
    assert image_path(None, "x" * 300 + ".jpeg").endswith(".jpeg") and len(image_path(None, "x" * 300)) < 160

"""A fourth round of hostile and careless uploads: each test pins one problem that was found and fixed.

The fixtures and helpers are test_hostile_uploads.py's: ``attacker`` is a merchant's API client,
``send`` posts a case and runs its job here.
"""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from p2w_search.models import ImportJob
from p2w_search.uploads.storage import upload_backend
from shop_demo.catalog.models import Merchant, Product
from tests import test_hostile_uploads as earlier
from tests.hostile import BLUE, HEADER, RED, json_row, row, zip_bytes
from tests.test_hostile_uploads import Case, send

attacker = earlier.attacker  # a merchant's API client (a fixture)

COLUMNS = HEADER.strip().split(",")


def rejected_rows(client, body):
    return b"".join(client.get(body["rejected_rows_url"]).streaming_content).decode()


@pytest.mark.parametrize("position", [0, 1, 4], ids=["error first", "error second", "error in the middle"])
def test_rejected_rows_keep_each_cell_under_its_column_wherever_the_error_column_is(attacker, settings, media,
                                                                                    position):
    """A rejected-rows file opened in a spreadsheet, its error column moved, and sent again: the file that came
    back dropped the header's old error column but not the rows' old error cells, so every cell after it
    sat one column to the left (the old error under 'title', the title under 'description' ...), and the
    file sent again imported the wrong values."""
    header = [*COLUMNS[:position], "error", *COLUMNS[position:]]
    cells = ["RE-1", "Tee", "", "t-shirt", "cheap", "EUR", "true", "red.png"]
    manifest = io.StringIO()
    csv.writer(manifest, lineterminator="\n").writerows([header, [*cells[:position], "old note", *cells[position:]]])
    status, body = send(attacker, Case("error column moved", manifest.getvalue()), settings)
    assert (body["state"], body["rows_rejected"]) == ("done", 1)
    content = rejected_rows(attacker, body)
    assert list(csv.DictReader(io.StringIO(content))) == [
        {**dict(zip(COLUMNS, cells)), "error": "price: A valid number is required."}]
    # Fixed and sent again, it imports what the merchant wrote.
    status, body = send(attacker, Case("fixed", content.replace("cheap", "8.00")), settings)
    assert (body["rows_accepted"], body["rows_rejected"]) == (1, 0)
    assert Product.objects.filter(sku="RE-1").values_list("title", "category", "price").get() == (
        "Tee", "t-shirt", 8)


@pytest.mark.parametrize("key, first, last", [("price", "1.00", "9.50"), ("title", "Cap", "Tee"),
                                              ("sku", "JD-X", "JD-1")])
def test_a_json_line_that_gives_one_key_twice_is_rejected_naming_the_key(attacker, settings, media, key, first,
                                                                         last):
    """``{"price": "1.00", ..., "price": "9.50"}``: json.loads keeps the last value, so the product was
    imported at 9.50 without a word, whichever the merchant meant (a spreadsheet-to-JSON export that
    doubled a column, a hand edit). The row is rejected, naming the key, and comes back as sent."""
    values = {"sku": "JD-1", "title": "Tee", "category": "t-shirt", "price": "9.50", "images": "red.png"}
    del values[key]
    key_twice = f"{json.dumps(key)}: {json.dumps(first)}, {json.dumps(key)}: {json.dumps(last)}"
    twice = json.dumps(values)[:-1] + f", {key_twice}}}"
    manifest = twice + "\n" + json_row("JD-2")
    status, body = send(attacker, Case("a key twice", manifest, manifest_name="catalog.jsonl"), settings)
    reason = f"the key {key!r} is given twice; give each key once"
    assert (body["state"], body["rows_accepted"], body["rows_rejected"]) == ("done", 1, 1)
    assert body["errors"] == [{"row": 1, "field": key, "reason": reason}]
    assert list(Product.objects.values_list("sku", flat=True)) == ["JD-2"]
    assert [json.loads(text) for text in rejected_rows(attacker, body).splitlines()] == [
        {"line": twice, "error": f"{key}: {reason}"}]


def test_a_full_sync_spares_the_sku_of_a_line_that_gives_a_key_twice(attacker, settings, media):
    """The row is rejected, but a SKU the manifest names is never unlisted by that import."""
    merchant = Merchant.objects.get(slug="attacker")
    Product.objects.create(merchant=merchant, sku="KT-1", title="Kept", category="cap", price=5)
    twice = json_row("KT-1").rstrip("\n")[:-1] + ', "price": "1", "price": "2"}\n'
    status, body = send(attacker, Case("sync", twice + json_row("KT-2"), manifest_name="catalog.jsonl",
                                       options={"full_sync": "true"}), settings)
    assert (body["state"], body["products_unlisted"], body["rows_rejected"]) == ("done", 0, 1)
    assert Product.objects.get(sku="KT-1").listed


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("name, manifest", [("catalog.csv", HEADER + row("U-1")),
                                            ("catalog.jsonl", json_row("U-1"))], ids=["csv", "jsonl"])
def test_utf16_without_a_bom_is_refused_as_utf16(attacker, settings, media, encoding, name, manifest):
    """Without a BOM, UTF-16 is valid UTF-8 (a NUL byte beside each letter): a CSV was refused for 'unknown
    columns 's\\x00k\\x00u\\x00', '\\x00t\\x00i\\x00t\\x00l\\x00e\\x00' ...' and no 'sku' column, a JSON Lines file
    was accepted and every line failed as invalid JSON. Both now get the answer a UTF-16 file with a BOM gets."""
    status, body = send(attacker, Case("utf-16", manifest.encode(encoding), manifest_name=name), settings)
    assert (status, body) == (400, {"manifest": ["The manifest cannot be used: it is UTF-16 text; save it as UTF-8."]})
    assert not ImportJob.objects.exists()


@pytest.mark.parametrize("name, field", [("manifest", "manifest"), ("archive", "archive"),
                                         ("rejected-rows", "rejected_rows")])
def test_a_file_gone_from_the_storage_is_a_404_not_a_500(attacker, settings, media, name, field):
    """A job that still names a file the storage no longer holds (a retention run that deleted the manifest
    and then failed on the archive keeps both names until it runs again; a disk cleaned by hand) answered
    its download with a 500 (FileNotFoundError)."""
    status, body = send(attacker, Case("gone", HEADER + row("GO-1") + row("GO-2", price="x")), settings)
    job = ImportJob.objects.get(pk=body["id"])
    upload_backend().delete(getattr(job, field).name)
    response = attacker.get(f"/api/imports/{job.pk}/files/{name}/")
    assert (response.status_code, response.json()) == (404, {"detail": f"The {name} file of this upload is no "
                                                                       "longer kept."})


def test_a_json_lines_description_is_as_long_as_a_csv_cell_at_most(attacker, settings, media):
    """A CSV cell stops at 131,072 characters; a JSON Lines row had no bound (3 MB were stored, and sent again in
    every result that showed the product). The product API has the same bound."""
    manifest = json_row("LD-1", description="x" * 131_073) + json_row("LD-2", description="x" * 131_072)
    status, body = send(attacker, Case("long", manifest, manifest_name="catalog.jsonl"), settings)
    assert (body["state"], body["rows_accepted"], body["rows_rejected"]) == ("done", 1, 1)
    assert body["errors"] == [{"row": 1, "field": "description",
                               "reason": "Ensure this field has no more than 131072 characters."}]
    assert list(Product.objects.values_list("sku", flat=True)) == ["LD-2"]


@pytest.mark.parametrize("field, values", [("policy", ["reject", "skip"]), ("full_sync", ["true", "false"]),
                                           ("confirm_unlist", ["0", "5"]), ("archive", "two zips")])
def test_an_upload_field_given_twice_is_refused_naming_it_and_keeps_nothing(attacker, media, field, values):
    """``policy=reject&policy=skip``: the serializer read the last value, silently (a skip job where reject may have
    been meant); the merchant pages refused it already. Several image files still make one upload."""
    def archive():
        return SimpleUploadedFile("images.zip", zip_bytes([("red.png", RED)]))

    data = {"manifest": SimpleUploadedFile("c.csv", (HEADER + row("TW-1")).encode()), "archive": archive(),
            field: [archive(), archive()] if values == "two zips" else values}
    response = attacker.post("/api/imports/", data, format="multipart")
    assert (response.status_code, response.json()) == (400, {field: [f"Give {field} once; it was given 2 times."]})
    assert not ImportJob.objects.exists()
    assert earlier.uploaded_files(media) == []


def test_several_image_files_are_still_one_upload(attacker, settings, media):
    images = [SimpleUploadedFile(name, png) for name, png in (("red.png", RED), ("blue.png", BLUE))]
    response = attacker.post("/api/imports/", {
        "manifest": SimpleUploadedFile("c.csv", (HEADER + row("TW-1") + row("TW-2", "blue.png")).encode()),
        "images": images}, format="multipart")
    assert response.status_code == 202, response.content

"""What an attacker or a careless merchant uploads, and the answer each must get.

Every case is one upload with the exact answer it must get: a 400 naming the field and the
reason, or a job with exact counts and errors. ``test_hostile_uploads_leave_another_merchant_untouched``
runs them all, one after the other, against one database, and checks that a second
merchant's catalog (rows, image files and vectors) comes out byte for byte as it went in.
"""

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field

import pytest
from django.core.files.storage import default_storage
from django.db import DataError
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.models import ImageEmbedding, ImportJob, ProductImage
from p2w_search.uploads import importer
from shop_demo.catalog.models import Merchant, Product
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory, png
from tests.hostile import (
    APPENDED,
    BLUE,
    HEADER,
    RED,
    SECRET,
    damaged_zip,
    encrypted_zip,
    jpeg_with_gps_and_appended_zip,
    json_row,
    link_entry,
    nfd,
    png_header,
    row,
    wide_png,
    zip_bytes,
)

IMAGES = [("red.png", RED), ("blue.png", BLUE)]
COLUMNS = "category, currency, description, error, images, in_stock, price, sku, title"
STORED = zip_bytes(IMAGES, compression=zipfile.ZIP_STORED)  # red.png first: damaged_zip changes it, blue.png stays
CONFIRM_UNLIST_TOO_BIG = ("confirm_unlist must be at most 2147483647: it is the number of products the full sync "
                          "unlists, as a refused sync told you.")
SURROGATES = json_row("SG-1") + json_row("SG-2", title="a\ud800") + json_row("SG-3", **{"\udfff": 1})


def damaged(reason):
    """The job of a damaged red.png: its row (SKU DZ-1) a row error, blue.png's row (DZ-2) imported."""
    return {"state": "done", "rows_total": 2, "rows_accepted": 1, "rows_rejected": 1, "errors": [
        {"row": 2, "field": "images", "reason": f"'red.png' in the zip is damaged: {reason}"}]}


DAMAGED = HEADER + row("DZ-1", "red.png") + row("DZ-2", "blue.png")


@dataclass
class Case:
    name: str
    manifest: object  # str or bytes
    archive: object = None  # bytes of a zip; None: the red and blue images
    manifest_name: str = "catalog.csv"
    images: list = None  # multipart files instead of an archive
    options: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    status: int = 202
    errors: dict = None  # 400: {field: [message]} exactly; a message ending in "..." is a prefix
    job: dict = None  # 202: fields of the job's progress that must have these values


def refused(field_name, message):
    return {field_name: [message]}


CASES = [
    # --- archives: refused before anything is inflated --------------------------------------------------
    Case("a path that climbs out", HEADER + row("A-1"), zip_bytes([("../red.png", RED)]), status=400,
         errors=refused("archive", "The archive is refused: unsafe path in the archive: '../red.png'.")),
    Case("an absolute path", HEADER + row("A-1"), zip_bytes([("/etc/red.png", RED)]), status=400,
         errors=refused("archive", "The archive is refused: unsafe path in the archive: '/etc/red.png'.")),
    Case("a Windows drive path", HEADER + row("A-1"), zip_bytes([("C:\\red.png", RED)]), status=400,
         errors=refused("archive", "The archive is refused: unsafe path in the archive: 'C:\\\\red.png'.")),
    Case("a link", HEADER + row("A-1"), zip_bytes([link_entry("red.png", "/etc/passwd")]), status=400,
         errors=refused("archive", "The archive is refused: links are not allowed in the archive: 'red.png'.")),
    Case("an encrypted entry", HEADER + row("A-1"), encrypted_zip("red.png", RED), status=400,
         errors=refused("archive", "The archive is refused: encrypted entry in the archive: 'red.png'.")),
    Case("not a zip", HEADER + row("A-1"), b"GIF89a, but no zip", status=400,
         errors=refused("archive", "The archive is refused: the archive is not a readable zip file.")),
    Case("a zip bomb", HEADER + row("A-1"), zip_bytes([("red.png", b"\0" * (5 * 1024 * 1024))]), status=400,
         errors=refused("archive", "The archive is refused: 'red.png' is compressed ...")),
    Case("one name twice", HEADER + row("A-1"), zip_bytes([("red.png", RED), ("red.png", BLUE)]), status=400,
         errors=refused("archive", "The archive is refused: the archive holds 'red.png' twice ('red.png' and "
                                   "'red.png'); give each file once.")),
    Case("a method zipfile cannot inflate (Deflate64)", HEADER + row("A-1"), damaged_zip(STORED, method=9),
         status=400, errors=refused("archive", "The archive is refused: 'red.png' is compressed with a method this "
                                               "server cannot read (method 9); zip the images again with the usual "
                                               "compression (deflate).")),
    Case("a method zipfile cannot inflate (AES)", HEADER + row("A-1"), damaged_zip(STORED, method=99), status=400,
         errors=refused("archive", "The archive is refused: 'red.png' is compressed with a method this server "
                                   "cannot read (method 99); zip the images again with the usual compression "
                                   "(deflate).")),
    Case("a zip version zipfile does not read", HEADER + row("A-1"), damaged_zip(STORED, extract_version=99),
         status=400, errors=refused("archive", "The archive is refused: the archive is not a readable zip file.")),
    Case("one name twice in two Unicode forms", HEADER + row("A-1", "café.png"),
         zip_bytes([("café.png", RED), (nfd("café.png"), BLUE)]), status=400,
         errors=refused("archive", "The archive is refused: the archive holds 'café.png' twice ...")),
    Case("two multipart images with one name", HEADER + row("A-1"), images=[("red.png", RED), ("red.png", BLUE)],
         status=400, errors=refused("images", "The images are refused: two of the images are named 'red.png'; "
                                              "give each file once.")),
    # --- manifests that cannot be read as a whole ---------------------------------------------------------
    Case("not UTF-8", (HEADER + row("A-1")).encode() + "A-2,Thé,,t-shirt,1,EUR,true,red.png\n".encode("latin-1"),
         status=400, errors=refused("manifest", "The manifest cannot be used: line 3: it is not UTF-8 text.")),
    Case("UTF-16", (HEADER + row("A-1")).encode("utf-16"), status=400,
         errors=refused("manifest", "The manifest cannot be used: it is UTF-16 text; save it as UTF-8.")),
    Case("a column twice", HEADER.replace("images\n", "images,price\n") + row("A-1").replace("\n", ",1\n"),
         status=400, errors=refused("manifest", "The manifest cannot be used: the column 'price' is given twice in "
                                                "the header (columns 5 and 9); give each column once.")),
    Case("an unknown column", HEADER.replace("images\n", "images,colour\n") + row("A-1").replace("\n", ",red\n"),
         status=400, errors=refused("manifest", f"The manifest cannot be used: unknown column 'colour'; the columns "
                                                f"are {COLUMNS}.")),
    Case("no sku column", "title,category,price,images\nTee,t-shirt,1,red.png\n", status=400,
         errors=refused("manifest", "The manifest cannot be used: the header has no 'sku' column.")),
    Case("a column without a name", "sku,,title\nA-1,x,Tee\n", status=400,
         errors=refused("manifest", "The manifest cannot be used: column 2 of the header has no name.")),
    Case("a quote that never closes", HEADER + row("A-1") + 'A-2,"Tee,,t-shirt,9.50,EUR,true,red.png\n' + row("A-3"),
         status=400, errors=refused("manifest", "The manifest cannot be used: row 3: a quoted cell that starts on "
                                                "this row is never closed ...")),
    Case("a cell over the csv limit", HEADER + row("A-1", title="x" * 131_073), status=400,
         errors=refused("manifest", "The manifest cannot be used: row 2: a cell is longer than 131072 characters.")),
    Case("a blank header", "\n" + row("A-1"), status=400,
         errors=refused("manifest", "The manifest cannot be used: it has no header row.")),
    Case("a header and no row", HEADER, status=400,
         errors=refused("manifest", "The manifest cannot be used: it has no rows.")),
    Case("more rows than allowed", HEADER + "".join(row(f"A-{n}") for n in range(4)), settings={"IMPORT_MAX_ROWS": 3},
         status=400, errors=refused("manifest", "The manifest cannot be used: it has more than 3 rows; split it "
                                                "into several uploads.")),
    Case("five thousand unknown columns", "sku," + ",".join(f"c{n}" for n in range(5000)) + "\nA-1,1\n",
         status=400, errors=refused("manifest", f"The manifest cannot be used: unknown columns 'c0', 'c1', 'c2', 'c3', "
                                                f"'c4' and 4995 more; the columns are {COLUMNS}.")),
    Case("an unknown column with a very long name", "sku," + "x" * 100_000 + "\nA-1,1\n", status=400,
         errors=refused("manifest", f"The manifest cannot be used: unknown column '{'x' * 60}…'; the columns are "
                                    f"{COLUMNS}.")),
    Case("a spreadsheet file", HEADER + row("A-1"), manifest_name="catalog.xlsx", status=400,
         errors=refused("manifest", "The manifest cannot be used: it must be a .csv or .jsonl file.")),
    Case("a confirmation without a full sync", HEADER + row("A-1"), options={"confirm_unlist": "3"}, status=400,
         errors=refused("confirm_unlist", "confirm_unlist only applies to a full sync (full_sync=true).")),
    Case("a confirmation past what the database holds", HEADER + row("A-1"),
         options={"full_sync": "true", "confirm_unlist": str(2**31)}, status=400,
         errors=refused("confirm_unlist", CONFIRM_UNLIST_TOO_BIG)),
    # --- ordinary files that once were 500s ---------------------------------------------------------------
    Case("old Mac line endings (CR only)", (HEADER + row("CR-1") + row("CR-2", "blue.png")).replace("\n", "\r"),
         job={"state": "done", "rows_total": 2, "rows_accepted": 2, "rows_rejected": 0, "images_total": 2}),
    Case("cells separated by ';'", 'sku;title;category;price;images\nSC-1;Tee;t-shirt;9.50;"red.png;blue.png"\n',
         job={"state": "done", "rows_total": 1, "rows_accepted": 1, "images_total": 2}),
    Case("a stray CR inside a cell", HEADER + row("SR-1") + "SR-2,Te\re,,t-shirt,9.50,EUR,true,red.png\n",
         job={"state": "done", "rows_total": 3, "rows_accepted": 1, "rows_rejected": 2}),
    Case("JSON Lines with a broken first line", '{sku: broken\n{"sku": "J-1", "title": "Cap", "category": "cap", '
         '"price": "12", "images": "red.png"}\n\n[1, 2]\n', manifest_name="catalog.jsonl",
         job={"state": "done", "rows_total": 3, "rows_accepted": 1, "rows_rejected": 2, "errors": [
             {"row": 1, "field": None, "reason": "not valid JSON: Expecting property name enclosed in double quotes"},
             {"row": 4, "field": None, "reason": "a line must be a JSON object"}]}),
    Case("a NUL character in a cell", HEADER + row("NU-1", title="T\0e"), job={"rows_accepted": 0, "errors": [
        {"row": 2, "field": "title", "reason": "Null characters are not allowed."}]}),
    Case("JSON Lines nested too deeply", "[" * 100_000 + "]" * 100_000 + "\n", manifest_name="catalog.jsonl",
         job={"state": "done", "rows_total": 1, "rows_accepted": 0, "errors": [
             {"row": 1, "field": None, "reason": "not valid JSON: nested too deeply"}]}),
    Case("a duplicate SKU whose first row is bad", HEADER + row("DU-1", price="cheap") + row("DU-1") + row("DU-2"),
         job={"state": "done", "rows_total": 3, "rows_accepted": 1, "rows_rejected": 2, "errors": [
             {"row": 2, "field": "sku", "reason": "sku 'DU-1' is on rows 2, 3; give each product once"},
             {"row": 2, "field": "price", "reason": "A valid number is required."},
             {"row": 3, "field": "sku", "reason": "sku 'DU-1' is on rows 2, 3; give each product once"}]}),
    Case("one SKU as a JSON number and as a string", json_row(1.5) + json_row("1.5") + json_row("NS-1"),
         manifest_name="catalog.jsonl", job={"state": "done", "rows_total": 3, "rows_accepted": 1, "errors": [
             {"row": 1, "field": "sku", "reason": "sku '1.5' is on rows 1, 2; give each product once"},
             {"row": 2, "field": "sku", "reason": "sku '1.5' is on rows 1, 2; give each product once"}]}),
    Case("lone surrogates in JSON Lines", SURROGATES, manifest_name="catalog.jsonl", job={
        "state": "done", "rows_total": 3, "rows_accepted": 1, "rows_rejected": 2, "errors": [
            {"row": 2, "field": "title", "reason": "Surrogate characters are not allowed: U+D800."},
            {"row": 3, "field": None, "reason": "unknown fields: '\\udfff'"}]}),
    # --- images -------------------------------------------------------------------------------------------
    Case("a tiny, very wide image", HEADER + row("WI-1", "wide.png"), zip_bytes([("wide.png", wide_png())]),
         job={"rows_accepted": 0, "errors": [{"row": 2, "field": "images", "reason": "'wide.png': image is "
              "160000x1 pixels; its long side may be at most 20 times its short side"}]}),
    Case("a decompression bomb", HEADER + row("BO-1", "bomb.png"),
         zip_bytes([("bomb.png", png_header(20_000, 20_000))]),
         job={"rows_accepted": 0, "errors": [{"row": 2, "field": "images", "reason": "'bomb.png': image has "
              "more pixels than the limit of 40.0 megapixels"}]}),
    Case("a thousand references to one file", HEADER + row("TH-1", ";".join(["red.png"] * 1000)),
         job={"rows_accepted": 0, "errors": [{"row": 2, "field": "images", "reason": "the row names 1000 images, "
              "more than the limit of 20"}]}),
    Case("the same file twice in one product", HEADER + row("TW-1", "red.png;red.png;blue.png"),
         job={"rows_accepted": 1, "images_total": 2}),
    Case("an entry whose CRC-32 is wrong", DAMAGED, damaged_zip(STORED, crc=0x12345678),
         job=damaged("Bad CRC-32 for file 'red.png'")),
    Case("an entry whose local header names another file", DAMAGED, damaged_zip(STORED, local_name=b"xxx.png"),
         job=damaged("File name in directory 'red.png' and header b'xxx.png' differ")),
    Case("an entry whose compressed size is 0", DAMAGED, damaged_zip(STORED, compress_size=0),
         job=damaged("Bad CRC-32 for file 'red.png'")),
    Case("an entry whose deflated data is corrupt", DAMAGED, damaged_zip(zip_bytes(IMAGES), overwrite=20),
         job=damaged("Error -3 while decompressing data: invalid block type")),
    Case("a web page named .png", HEADER + row("HT-1", "page.png"), zip_bytes([("page.png", b"<html>hi</html>")]),
         job={"rows_accepted": 0, "errors": [{"row": 2, "field": "images",
                                              "reason": "'page.png': not a recognised image format"}]}),
    Case("a decomposed name in the zip", HEADER + row("NF-1", "café.png"), zip_bytes([(nfd("café.png"), RED)]),
         job={"rows_accepted": 1, "images_total": 1}),
    Case("a photo with GPS and a zip appended", HEADER + row("GP-1", "photo.jpg"),
         zip_bytes([("photo.jpg", jpeg_with_gps_and_appended_zip())]), job={"rows_accepted": 1, "images_total": 1}),
    # --- full syncs that would empty a catalog -----------------------------------------------------------
    Case("a full sync whose every row is bad", HEADER + row("FS-1", price="not-a-price") + row("FS-2", price="x"),
         options={"full_sync": "true"}, job={"state": "rejected", "products_unlisted": 0, "rows_accepted": 0}),
    Case("a full sync without its zip", HEADER + row("FS-1") + row("FS-2"), zip_bytes([]),
         options={"full_sync": "true"}, job={"state": "rejected", "products_unlisted": 0, "rows_accepted": 0}),
]


@pytest.fixture
def attacker(db, django_user_model):
    merchant = MerchantFactory(slug="attacker", user=django_user_model.objects.create_user("attacker"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")
    return client


@pytest.fixture
def bystander(db, media):
    """Another merchant's listed, embedded catalog, with SKUs an attacker may reuse."""
    merchant = MerchantFactory(slug="bystander")
    images = [ProductImageFactory(product=ProductFactory(merchant=merchant, sku=sku), data=png(colour))
              for sku, colour in (("A-1", (200, 30, 30)), ("CR-1", (30, 200, 30)), ("FS-1", (30, 30, 200)))]
    model = indexing.register_model()
    indexing.queue_images(images)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return merchant


def catalog_checksum(merchant):
    """SHA-256 over a merchant's products, images (with their files' bytes) and vectors."""
    digest = hashlib.sha256()
    for values in Product.objects.filter(merchant=merchant).order_by("pk").values_list():
        digest.update(repr(values).encode())
    for image in ProductImage.objects.filter(product__merchant=merchant).order_by("pk"):
        digest.update(repr((image.pk, image.product_id, image.position, image.sha256, image.file.name,
                            image.in_index)).encode())
        with default_storage.open(image.file.name, "rb") as handle:
            digest.update(handle.read())
    for values in (ImageEmbedding.objects.filter(image__product__merchant=merchant).order_by("pk")
                   .values_list("pk", "image_id", "model_id", "state", "vector", "norm", "attempts")):
        digest.update(repr(values).encode())
    return digest.hexdigest()


def send(client, case, settings):
    """POST ``case``; run its job here when it is accepted; return the final answer (status, body)."""
    if case.settings:
        settings.P2W_SEARCH = {**settings.P2W_SEARCH, **case.settings}
    manifest = io.BytesIO(case.manifest.encode() if isinstance(case.manifest, str) else case.manifest)
    manifest.name = case.manifest_name
    data = {"manifest": manifest, **case.options}
    if case.images is not None:
        data["images"] = [_named(content, name) for name, content in case.images]
    else:
        data["archive"] = _named(zip_bytes(IMAGES) if case.archive is None else case.archive, "images.zip")
    response = client.post("/api/imports/", data, format="multipart")
    if response.status_code != 202:
        return response.status_code, response.json()
    importer.run_import(ImportJob.objects.get(pk=response.json()["id"]))
    return 202, client.get(response.json()["url"]).json()


def _named(data, name):
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def check(case, status, body):
    assert status == case.status, body
    if case.errors is not None:
        assert set(body) == set(case.errors), body
        for name, (message,) in case.errors.items():
            if message.endswith("..."):
                assert body[name][0].startswith(message[:-3]), body
            else:
                assert body[name] == [message]
    for key, value in (case.job or {}).items():
        assert body[key] == value, (key, body)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_upload_gets_its_answer(attacker, case, settings, media):
    status, body = send(attacker, case, settings)
    check(case, status, body)


def test_hostile_uploads_leave_another_merchant_untouched(attacker, bystander, settings, media):
    before = catalog_checksum(bystander)
    listed_before = Product.objects.filter(merchant=bystander, listed=True).count()
    for case in CASES:
        check(case, *send(attacker, case, settings))
    # The attacker reuses the bystander's SKUs, then syncs its own catalog down to one of them, on purpose.
    status, body = send(attacker, Case("sync to one", HEADER + row("A-1"), options={
        "full_sync": "true", "confirm_unlist": str(Product.objects.filter(merchant__slug="attacker", listed=True)
                                                   .exclude(sku="A-1").count())}), settings)
    assert body["state"] == "done" and body["products_unlisted"] > 0
    assert catalog_checksum(bystander) == before
    assert Product.objects.filter(merchant=bystander, listed=True).count() == listed_before == 3


def test_stored_photo_keeps_no_metadata_and_nothing_appended(attacker, settings, media):
    status, body = send(attacker, next(c for c in CASES if c.name == "a photo with GPS and a zip appended"), settings)
    image = ProductImage.objects.get(product__sku="GP-1")
    with default_storage.open(image.file.name, "rb") as handle:
        stored = handle.read()
    assert SECRET.encode() not in stored and APPENDED not in stored
    served = Image.open(io.BytesIO(stored))
    assert (served.format, served.size, dict(served.getexif())) == ("JPEG", (48, 32), {})
    assert image.sha256 == hashlib.sha256(jpeg_with_gps_and_appended_zip()).hexdigest()  # the upload's own hash


def test_a_png_is_served_with_its_exact_pixels(attacker, settings, media):
    send(attacker, Case("png", HEADER + row("PX-1")), settings)
    image = ProductImage.objects.get(product__sku="PX-1")
    with default_storage.open(image.file.name, "rb") as handle:
        assert Image.open(handle).convert("RGB").tobytes() == Image.open(io.BytesIO(RED)).convert("RGB").tobytes()


def test_rejected_rows_come_back_as_a_file_to_fix_and_send_again(attacker, settings, media):
    manifest = HEADER + row("RJ-1") + row("RJ-2", price="cheap") + row("RJ-3", "nowhere.png")
    status, body = send(attacker, Case("rejected rows", manifest), settings)
    assert body["rows_accepted"] == 1 and body["errors_total"] == 2
    download = attacker.get(body["rejected_rows_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    lines = b"".join(download.streaming_content).decode().splitlines()
    assert lines == [
        "sku,title,description,category,price,currency,in_stock,images,error",
        "RJ-2,Tee,,t-shirt,cheap,EUR,true,red.png,price: A valid number is required.",
        "RJ-3,Tee,,t-shirt,9.50,EUR,true,nowhere.png,images: missing image 'nowhere.png'",
    ]
    fixed = "\n".join(lines[:1] + [lines[1].replace("cheap", "8.00"), lines[2].replace("nowhere.png", "blue.png")])
    status, body = send(attacker, Case("fixed", fixed + "\n"), settings)
    assert (body["rows_accepted"], body["errors_total"]) == (2, 0)  # the error column is read past


def test_json_lines_rejected_rows_keep_each_line(attacker, settings, media):
    lines = ['{"sku": "JL-1", "title": "Cap", "category": "cap", "price": "bad", "images": ["red.png"]}', "{oops"]
    status, body = send(attacker, Case("jsonl", "\n".join(lines) + "\n", manifest_name="c.jsonl"), settings)
    content = b"".join(attacker.get(body["rejected_rows_url"]).streaming_content).decode()
    assert [json.loads(line) for line in content.splitlines()] == [
        {"sku": "JL-1", "title": "Cap", "category": "cap", "price": "bad", "images": ["red.png"],
         "error": "price: A valid number is required."},
        {"line": "{oops", "error": "not valid JSON: Expecting property name enclosed in double quotes"},
    ]


def uploaded_files(media):
    """The files in the uploads storage (the media fixture puts it beside MEDIA_ROOT)."""
    return sorted(path for path in (media.parent / "uploads").rglob("*") if path.is_file())


def test_the_page_refuses_a_confirmation_past_what_the_database_holds(attacker, client, media):
    client.force_login(Merchant.objects.get(slug="attacker").user)
    page = client.post("/merchant/upload/", {"manifest": _named((HEADER + row("A-1")).encode(), "catalog.csv"),
                                             "archive": _named(zip_bytes(IMAGES), "images.zip"),
                                             "full_sync": "on", "confirm_unlist": str(2**40)})
    assert page.status_code == 400
    assert CONFIRM_UNLIST_TOO_BIG in page.content.decode()
    assert not ImportJob.objects.exists() and uploaded_files(media) == []


def test_a_job_that_is_not_saved_leaves_no_file(attacker, media):
    merchant = Merchant.objects.get(slug="attacker")
    values = {"manifest": _named((HEADER + row("A-1")).encode(), "catalog.csv"),
              "archive": _named(zip_bytes(IMAGES), "images.zip"), "policy": "skip", "full_sync": True,
              "confirm_unlist": 2**31}  # past PostgreSQL's integer: the row's INSERT fails, after the files are saved
    with pytest.raises(DataError):
        importer.create_job(owner=merchant.user, merchant_key=str(merchant.pk), values=values)
    assert not ImportJob.objects.exists() and uploaded_files(media) == []


def test_one_sku_as_a_number_and_a_string_far_apart_rejects_both(attacker, settings, media, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)  # rows 1 and 5 are saved in different chunks, as 100 rows apart are
    manifest = json_row(2.5, title="first") + "".join(json_row(f"FA-{n}") for n in range(3)) + json_row(
        "2.5", title="second")
    status, body = send(attacker, Case("far apart", manifest, manifest_name="catalog.jsonl"), settings)
    assert (body["state"], body["rows_accepted"], body["rows_rejected"]) == ("done", 3, 2)
    assert body["errors"] == [{"row": number, "field": "sku", "reason": "sku '2.5' is on rows 1, 5; give each "
                                                                         "product once"} for number in (1, 5)]
    assert not Product.objects.filter(sku="2.5").exists()


def test_a_full_sync_spares_a_sku_given_as_a_json_number(attacker, client, settings, media):
    merchant = Merchant.objects.get(slug="attacker")
    ProductFactory(merchant=merchant, sku="7.5", title="Old")
    ProductFactory(merchant=merchant, sku="X-1", title="Gone")
    manifest = json_row(7.5, title="New")
    client.force_login(merchant.user)
    counted = client.post("/merchant/upload/check/", {"manifest": _named(manifest.encode(), "catalog.jsonl"),
                                                      "full_sync": "true"}).json()["full_sync"]
    assert (counted["unlist"], counted["skus"]) == (1, ["X-1"])
    status, body = send(attacker, Case("sync", manifest, manifest_name="catalog.jsonl",
                                       options={"full_sync": "true", "confirm_unlist": "1"}), settings)
    assert (body["state"], body["products_unlisted"], body["unlisted_skus"]) == ("done", 1, ["X-1"])
    assert list(Product.objects.filter(merchant=merchant).order_by("sku").values_list("sku", "title", "listed")) == [
        ("7.5", "New", True), ("X-1", "Gone", False)]


def test_rejected_rows_with_lone_surrogates_read_back_as_sent(attacker, settings, media):
    status, body = send(attacker, next(c for c in CASES if c.name == "lone surrogates in JSON Lines"), settings)
    content = b"".join(attacker.get(body["rejected_rows_url"]).streaming_content).decode()
    sent = [json.loads(line) for line in SURROGATES.splitlines()]
    assert [json.loads(line) for line in content.splitlines()] == [
        {**sent[1], "error": "title: Surrogate characters are not allowed: U+D800."},
        {**sent[2], "error": "unknown fields: '\\udfff'"},
    ]


@pytest.mark.parametrize("stem", ["é" * 140, "x" * 270])
def test_names_past_what_a_file_system_holds_are_stored_cut_short(attacker, settings, media, stem):
    """An image or a manifest named past 255 bytes (the file system's limit on a name) failed the import
    or the upload with an OSError; each is stored under a shorter name, its extension kept."""
    long_image = f"{stem}.png"
    case = Case("long names", HEADER + row("LN-1", long_image) + row("LN-2", "blue.png"),
                zip_bytes([(long_image, RED), ("blue.png", BLUE)]), manifest_name=f"{stem}.csv")
    status, body = send(attacker, case, settings)
    assert (status, body["state"], body["rows_accepted"]) == (202, "done", 2)
    job = ImportJob.objects.get()
    stored = [job.manifest.name, *ProductImage.objects.order_by("pk").values_list("file", flat=True)]
    assert stored[0].endswith(".csv") and stored[1].endswith(".png")
    # The stem cut to 120 bytes, an image's 16 random hex digits, the extension, a suffix a storage may add
    assert max(len(name.rsplit("/", 1)[-1].encode()) for name in stored) <= 120 + len("-0123456789abcdef.png_abcdefg")
    assert Product.objects.get(sku="LN-1").p2w_images.get().file.read() != b""


def test_a_name_of_signs_only_is_not_stored_as_a_hidden_file(attacker, settings, media):
    case = Case("signs", HEADER + row("SG-1", "!!!.png"), zip_bytes([("!!!.png", RED)]))
    assert send(attacker, case, settings)[1]["rows_accepted"] == 1
    assert ProductImage.objects.get().file.name.rsplit("/", 1)[-1].startswith("image")


def test_more_images_as_files_than_django_takes_is_a_400_that_says_to_zip_them(attacker, media, settings):
    """Django's DATA_UPLOAD_MAX_NUMBER_FILES bounds every request's files, an anonymous form's too, so the
    upload does not raise it: past it, the answer names the limit and the archive."""
    files = [_named(RED, f"{n}.png") for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES)]  # and the manifest
    response = attacker.post("/api/imports/", {"manifest": _named((HEADER + row("A-1")).encode(), "catalog.csv"),
                                               "images": files}, format="multipart")
    assert (response.status_code, response.json()) == (400, {"detail": (
        "Too many files in one request: this site takes at most 100 (Django's DATA_UPLOAD_MAX_NUMBER_FILES). "
        "Send the images as one zip in 'archive' instead.")})
    assert not ImportJob.objects.exists() and uploaded_files(media) == []

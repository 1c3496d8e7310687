"""A fifth round of hostile and careless uploads: each test pins one problem that was found and fixed.

Through the API, the merchant pages and ``p2w_import``, with real files. The fixtures and helpers are
test_hostile_uploads.py's: ``attacker`` is a merchant's API client, ``send`` posts a case and runs its job here.
"""

import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from p2w_search.models import ImportJob
from p2w_search.uploads.manifest import seen_sku
from shop_demo.catalog.models import Merchant, Product
from tests import test_hostile_uploads as earlier
from tests.factories import ProductFactory
from tests.hostile import BLUE, HEADER, RED, json_row, row, zip_bytes
from tests.test_hostile_uploads import IMAGES, Case, send
from tests.test_hostile_uploads_4 import rejected_rows
from tests.test_merchant_pages import files as page_files
from tests.test_merchant_pages import text

attacker = earlier.attacker  # a merchant's API client (a fixture)

# SKUs of rejected rows, and the listed SKU each names once read as a reader sees it.
NAMED_AS_SEEN = {"A\u200b1": "A1", "A\u00a01": "A 1", "ＡＢ１": "AB1", "C\u00ad\u30001": "C 1"}
FILLER = [f"F-{n}" for n in range(20)]  # listed and named plainly: the sync stays under its 20 % share


def listed(merchant):
    return sorted(Product.objects.filter(merchant=merchant, listed=True).values_list("sku", flat=True))


def catalog(slug="attacker"):
    """The attacker's listed products: the SKUs a rejected row names as seen, the filler, and GONE-1."""
    merchant = Merchant.objects.get(slug=slug)
    for sku in [*NAMED_AS_SEEN.values(), *FILLER, "GONE-1"]:
        Product.objects.create(merchant=merchant, sku=sku, title="Old", category="cap", price=5)
    return merchant


@pytest.mark.parametrize("sku, seen", [*NAMED_AS_SEEN.items(), ("x\u00b2", "x\u00b2"), ("cafe\u0301", "caf\u00e9"),
                                       ("A\t1", "A1"), ("ｶﾞ1", "ガ1"), ("A1", "A1"), (15, 15)])
def test_the_sku_a_reader_sees(sku, seen):
    assert seen_sku(sku) == seen


@pytest.mark.parametrize("name, line", [("catalog.csv", row), ("catalog.jsonl", json_row)], ids=["csv", "jsonl"])
def test_a_full_sync_spares_a_listed_sku_a_rejected_row_names_as_a_reader_sees_it(attacker, settings, media, name,
                                                                                  line):
    """``A<ZERO WIDTH SPACE>1`` or ``ＡＢ１`` in the file, ``A1`` or ``AB1`` listed: the row is rejected (the SKU is
    refused), and the full sync unlisted the listed product, although the merchant plainly named it."""
    merchant = catalog()
    manifest = (HEADER if name.endswith(".csv") else "") + "".join(line(sku) for sku in [*NAMED_AS_SEEN, *FILLER])
    status, body = send(attacker, Case("sync", manifest, manifest_name=name, options={"full_sync": "true"}), settings)
    assert (body["state"], body["rows_rejected"], body["unlisted_skus"]) == ("done", 4, ["GONE-1"])
    assert listed(merchant) == sorted([*NAMED_AS_SEEN.values(), *FILLER])


def test_the_pages_count_of_a_full_sync_spares_them_alike(attacker, client, media):
    merchant = catalog()
    client.force_login(merchant.user)
    manifest = HEADER + "".join(row(sku) for sku in [*NAMED_AS_SEEN, *FILLER])
    response = client.post("/merchant/upload/check/", {
        "manifest": SimpleUploadedFile("catalog.csv", manifest.encode()),
        "archive": SimpleUploadedFile("images.zip", zip_bytes(IMAGES)), "full_sync": "true"})
    assert response.status_code == 200
    assert (response.json()["full_sync"]["unlist"], response.json()["full_sync"]["skus"]) == (1, ["GONE-1"])


# --- JSON Lines numbers: read as written, not through a float ----------------------------------------------

def jsonl(sku, price='"9.50"'):
    """A JSON Lines row whose sku and price are written as given (a JSON value's text)."""
    return f'{{"sku": {sku}, "title": "Tee", "category": "t-shirt", "price": {price}, "images": "red.png"}}\n'


def test_a_json_lines_price_is_read_as_written_not_rounded_through_a_float(attacker, settings, media):
    """``1.00000000000000001`` was read as the float 1.0 and stored as 1.00 (and ``19.999999999999999`` as 20.00),
    where the same digits in quotes are refused, and the product API refuses the number too. A number with an
    exponent is still a number (1e3: 1000, as the product API reads it)."""
    manifest = (jsonl('"JN-1"', "1.00000000000000001") + jsonl('"JN-2"', "19.999999999999999")
                + jsonl('"JN-3"', '"1.00000000000000001"') + jsonl('"JN-4"', "1e3") + jsonl('"JN-5"', "1e309")
                + jsonl('"JN-6"', "NaN") + jsonl('"JN-7"', "12.5"))
    status, body = send(attacker, Case("numbers", manifest, manifest_name="catalog.jsonl"), settings)
    digits = "Ensure that there are no more than 10 digits in total."
    assert (body["state"], body["rows_accepted"], body["errors"]) == ("done", 2, [
        {"row": 1, "field": "price", "reason": digits}, {"row": 2, "field": "price", "reason": digits},
        {"row": 3, "field": "price", "reason": digits}, {"row": 5, "field": "price", "reason": digits},
        {"row": 6, "field": "price", "reason": "A valid number is required."}])
    assert sorted(Product.objects.values_list("sku", "price")) == [("JN-4", 1000), ("JN-7", 12.5)]


def test_a_json_lines_sku_written_as_a_number_is_the_sku_as_written(attacker, settings, media):
    """``1.10`` was stored as the SKU '1.1', ``12345678901234567890.0`` as '1.2345678901234567e+19' and ``1e309`` as
    'inf': a SKU the merchant never wrote, a second product beside the one it has."""
    merchant = Merchant.objects.get(slug="attacker")
    Product.objects.create(merchant=merchant, sku="1.10", title="Old", category="cap", price=5)
    manifest = jsonl("1.10") + jsonl("12345678901234567890.0") + jsonl("1e309") + jsonl("2.5")
    status, body = send(attacker, Case("skus", manifest, manifest_name="catalog.jsonl"), settings)
    assert (body["state"], body["rows_accepted"], body["errors"]) == ("done", 4, [])
    assert sorted(Product.objects.values_list("sku", "title")) == [
        ("1.10", "Tee"), ("12345678901234567890.0", "Tee"), ("1e309", "Tee"), ("2.5", "Tee")]


def test_a_full_sync_spares_a_listed_sku_a_json_lines_number_names(attacker, settings, media):
    """The listed '1.10', named as the number 1.10: the sync unlisted it (the row made '1.1')."""
    merchant = Merchant.objects.get(slug="attacker")
    for sku in ["1.10", *FILLER]:
        Product.objects.create(merchant=merchant, sku=sku, title="Old", category="cap", price=5)
    manifest = jsonl("1.10", price='"cheap"') + "".join(jsonl(f'"{sku}"') for sku in FILLER)
    status, body = send(attacker, Case("sync", manifest, manifest_name="catalog.jsonl",
                                       options={"full_sync": "true"}), settings)
    assert (body["state"], body["rows_rejected"], body["unlisted_skus"]) == ("done", 1, [])
    assert listed(merchant) == sorted(["1.10", *FILLER])


def test_the_rejected_rows_file_keeps_a_json_number_as_it_was_sent(attacker, settings, media):
    """It came back as 1.0: fixed (another cell) and sent again, it imported a price no one wrote."""
    line = ('{"sku": "RN-1", "title": "Tee", "category": "t-shirt", "price": 1.00000000000000001, "images": '
            '["red.png", 2.50], "in_stock": true, "n": [1e309, NaN, -0.0]}')
    status, body = send(attacker, Case("rejected", line + "\n", manifest_name="catalog.jsonl"), settings)
    assert body["rows_rejected"] == 1
    content = rejected_rows(attacker, body)
    assert content == line[:-1] + ', "error": "unknown fields: \'n\'; price: Ensure that there are no more than 10 ' \
                                   'digits in total."}\n'


# --- image URLs that Python cannot parse ----------------------------------------------------------------------

BAD_URLS = {
    "http://shop.example:99999/x.png": "not a URL that can be fetched: 'http://shop.example:99999/x.png' (Port out "
                                       "of range 0-65535)",
    "http://shop.example:abc/x.png": "not a URL that can be fetched: 'http://shop.example:abc/x.png' (Port could not "
                                     "be cast to integer value as 'abc')",
    "http://[::1/x.png": "not a URL that can be fetched: 'http://[::1/x.png' (Invalid IPv6 URL)",
    "http://" + "a" * 64 + ".example/x.png": "not a URL that can be fetched: 'http://" + "a" * 64 + ".example/x.png' "
                                             "(its host name is no valid DNS name)",
    "https://a..example/x.png": "not a URL that can be fetched: 'https://a..example/x.png' (its host name is no "
                                "valid DNS name)",
}


def test_an_image_url_that_cannot_be_parsed_is_the_rows_error_not_a_failed_import(attacker, settings, media):
    """With URLs fetched, a port out of range, a broken IPv6 bracket or a DNS label over 63 characters raised
    ValueError or UnicodeError out of the import: the whole upload failed "because of an error on the server"."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_FETCH_URLS": True}
    manifest = HEADER + "".join(row(f"BU-{n}", url) for n, url in enumerate(BAD_URLS)) + row("BU-OK")
    status, body = send(attacker, Case("urls", manifest), settings)
    assert (body["state"], body["rows_accepted"], body["errors"]) == ("done", 1, [
        {"row": n, "field": "images", "reason": reason} for n, reason in enumerate(BAD_URLS.values(), start=2)])
    assert list(Product.objects.values_list("sku", flat=True)) == ["BU-OK"]


# --- a zip entry without a name ----------------------------------------------------------------------------

NAMELESS = "The archive is refused: entry 1 of the archive has no name; zip the images again."


def nameless_zip():
    """A zip whose first entry's name is one NUL byte, which zipfile reads as no name at all (it cuts at a NUL)."""
    raw = bytearray(zip_bytes([("A", RED), ("red.png", BLUE)], compression=zipfile.ZIP_STORED))
    for signature, name_at in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46)):  # local header, central directory
        raw[raw.find(signature) + name_at] = 0
    return bytes(raw)


def test_a_zip_entry_without_a_name_is_a_400_not_a_500(attacker, settings, media):
    """zipfile's ``is_dir`` reads the name's last character: an IndexError, a 500 for the API and the page."""
    status, body = send(attacker, Case("nameless", HEADER + row("NL-1"), nameless_zip()), settings)
    assert (status, body) == (400, {"archive": [NAMELESS]})
    assert earlier.uploaded_files(media) == []


def test_p2w_import_refuses_it_in_one_line(attacker, media, tmp_path):
    manifest, archive = tmp_path / "c.csv", tmp_path / "i.zip"
    manifest.write_text(HEADER + row("NL-1"))
    archive.write_bytes(nameless_zip())
    merchant = str(Merchant.objects.get(slug="attacker").pk)
    with pytest.raises(CommandError, match=f"^{re.escape('archive refused: ' + NAMELESS[24:-1])}$"):
        call_command("p2w_import", str(manifest), "--merchant", merchant, "--archive", str(archive))


# --- staff who switch merchants in another tab ---------------------------------------------------------------

def test_an_upload_form_opened_for_one_merchant_uploads_nothing_for_another(acme, rival, staff, client, media):
    """Staff act for the merchant kept in their session, which all their tabs share: the upload page opened for Acme,
    Rival chosen in another tab, and the form sent: Acme's file was imported into Rival's catalog, a full sync
    unlisting Rival's products. The form names the merchant it was opened for; sent for another, it keeps nothing."""
    ProductFactory(merchant=rival, sku="R-1", title="Rival's")
    client.force_login(staff)
    client.post("/merchant/act-for/", {"merchant": acme.pk})
    page = client.get("/merchant/upload/").content.decode()
    opened_for = re.search(r'<input type="hidden" name="merchant" value="([^"]*)">', page)
    assert opened_for and opened_for.group(1) == str(acme.pk)
    client.post("/merchant/act-for/", {"merchant": rival.pk})  # another tab
    response = client.post("/merchant/upload/", {**page_files(HEADER + row("A-1")), "full_sync": "on",
                                                 "merchant": opened_for.group(1)})
    assert response.status_code == 409
    assert ("This form was opened for another merchant than the one you act for now, Rival (chosen on another page). "
            "Nothing was uploaded: check whom you act for, above, and upload again.") in text(response)
    assert not ImportJob.objects.exists() and earlier.uploaded_files(media) == []
    assert list(Product.objects.values_list("sku", "listed")) == [("R-1", True)]
    # Sent for the merchant acted for, it is an upload as before; so is a form without the field (a script).
    for extra in ({"merchant": str(rival.pk)}, {}):
        response = client.post("/merchant/upload/", {**page_files(HEADER + row("R-2")), **extra})
        assert response.status_code == 302, text(response)[:500]
    assert list(ImportJob.objects.values_list("merchant_key", flat=True)) == [str(rival.pk)] * 2

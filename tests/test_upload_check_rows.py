"""The upload check lists the rows the import will reject without looking at the database, before the upload.

The check read the manifest once for what makes it unusable as a file; a row that named a SKU
twice, held a character no one sees, named no SKU or could not be read was reported only by the
import, after every image was sent. Now the check counts those rows and shows the first
``ROWS_SHOWN`` in the import's own words, on the same single read; the file still passes (the
import imports the other rows). Each case here is also imported, and the job's errors for those
rows must be the check's, word for word.
"""

import tracemalloc
import unicodedata

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from p2w_search.models import ImportJob
from p2w_search.uploads.importer import ROWS_SHOWN, RejectedRows, check_manifest, known_columns
from tests.factories import ProductFactory
from tests.hostile import HEADER, json_row, row
from tests.test_merchant_pages import files, run, text

CHECK = "/merchant/upload/check/"
CAFE, CAFE_NFD = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
INVISIBLE = r"sku 'A\u200b1' holds an invisible character, U+200B ZERO WIDTH SPACE, at position 2; remove it"
OK = ("The file reads well: {} products (SKUs), every column known. Each row's values are checked as it is imported; "
      "a row that fails comes back to fix.")


def check(client, manifest, name="catalog.csv", **fields):
    response = client.post(CHECK, {"manifest": SimpleUploadedFile(name, manifest.encode()), **fields})
    return response.status_code, response.json()


def imported_errors(client, manifest, rows, name="catalog.csv"):
    """The errors the import itself reports for the rows numbered ``rows``, in its order."""
    before = set(ImportJob.objects.values_list("pk", flat=True))
    response = client.post("/merchant/upload/", files(manifest, name=name))  # with the images the rows name
    assert response.status_code == 302, response.content.decode()[:2000]
    job = run(ImportJob.objects.exclude(pk__in=before).get())
    return job, [error for error in job.errors if error["row"] in rows]


# --- the check's answer: counted, listed, in the import's words -----------------------------------------

CSV_CASES = {
    "csv": (HEADER + row("A-1") + row("A\u200b1") + row("") + row("A-1") + row("B-1") + row("X" * 65), 6, 5, [
        {"row": 2, "field": "sku", "reason": "sku 'A-1' is on rows 2, 5; give each product once"},
        {"row": 3, "field": "sku", "reason": INVISIBLE},
        {"row": 4, "field": "sku", "reason": "This field may not be blank."},
        {"row": 5, "field": "sku", "reason": "sku 'A-1' is on rows 2, 5; give each product once"},
        {"row": 7, "field": "sku", "reason": "Ensure this field has no more than 64 characters."},
    ]),
    "a row of more cells than the header, whose SKU another row names": (
        HEADER + row("M-1") + "M-1,Tee,,t-shirt,9.50,EUR,true,red.png,extra\n", 2, 2, [
            {"row": 2, "field": "sku", "reason": "sku 'M-1' is on rows 2, 3; give each product once"},
            {"row": 3, "field": None, "reason": "the row has 9 cells, more than the 8 columns of the header"},
        ]),
    "a SKU on twelve rows: the reason names ten": (HEADER + "".join(row("T-1") for _ in range(12)), 12, 12, [
        {"row": number, "field": "sku", "reason": "sku 'T-1' is on rows 2, 3, 4, 5, 6, 7, 8, 9, 10, 11; give each "
                                                  "product once"} for number in range(2, 2 + ROWS_SHOWN)]),
}

JSONL_CASES = {
    "jsonl": (
        '{sku: broken\n'
        + '{"sku": "K-1", "sku": "K-2", "title": "Tee", "category": "t", "price": "1", "images": "red.png"}\n'
        + json_row("K-2") + json_row(None) + json_row(1.5, colour="red") + json_row("1.5"), 6, 6, [
            {"row": 1, "field": None, "reason": "not valid JSON: Expecting property name enclosed in double quotes"},
            {"row": 2, "field": "sku", "reason": "the key 'sku' is given twice; give each key once"},
            {"row": 3, "field": "sku", "reason": "sku 'K-2' is on rows 2, 3; give each product once"},
            {"row": 4, "field": "sku", "reason": "This field may not be null."},
            {"row": 5, "field": None, "reason": "unknown fields: 'colour'"},
            {"row": 5, "field": "sku", "reason": "sku '1.5' is on rows 5, 6; give each product once"},
            # the sixth row is counted, not shown
        ]),
    "one SKU in two Unicode forms, and one with no sku key": (
        json_row(CAFE) + json_row("OK-1") + json_row(CAFE_NFD) + '{"title": "Tee", "category": "t", "price": "1", '
        '"images": "red.png"}\n', 4, 3, [
            {"row": 1, "field": "sku", "reason": f"sku {CAFE!r} is on rows 1, 3, written in other Unicode code points "
                                                 "on some of them (they read the same); give each product once"},
            {"row": 3, "field": "sku", "reason": f"sku {CAFE!r} is on rows 1, 3, written in other Unicode code points "
                                                 "on some of them (they read the same); give each product once"},
            {"row": 4, "field": "sku", "reason": "This field is required."},
        ]),
}


@pytest.mark.parametrize(("name", "case"), [("catalog.csv", case) for case in CSV_CASES.values()]
                         + [("catalog.jsonl", case) for case in JSONL_CASES.values()],
                         ids=[*CSV_CASES, *JSONL_CASES])
def test_the_check_counts_and_lists_the_rows_the_import_rejects_in_its_words(acme, client, media, name, case):
    manifest, rows_in_file, rejected, shown = case
    client.force_login(acme.user)
    status, answer = check(client, manifest, name)
    assert (status, answer["errors"]) == (200, {})  # warnings: the file passes, the other rows are imported
    assert answer["rows"] == {"rejected": rejected, "errors": shown}
    job, errors = imported_errors(client, manifest, {error["row"] for error in shown}, name)
    assert errors == shown  # the import's own words, row for row
    assert (job.rows_total, job.rows_rejected) == (rows_in_file, rejected)


def test_the_first_rows_are_the_first_in_the_file_even_when_a_duplicate_is_found_late(acme, client, media):
    """Row 2's SKU is named again on the last row: row 2 comes first, though it was known bad only at the end."""
    manifest = (HEADER + row("D-1") + "".join(row(f"G-{n}") for n in range(10))
                + "".join(row(f"I\u200b{n}") for n in range(8)) + row("D-1"))
    client.force_login(acme.user)
    status, answer = check(client, manifest)
    assert [error["row"] for error in answer["rows"]["errors"]] == [2, 13, 14, 15, 16]
    assert answer["rows"]["rejected"] == 10
    assert answer["rows"]["errors"][0]["reason"] == "sku 'D-1' is on rows 2, 21; give each product once"
    job, errors = imported_errors(client, manifest, {2, 13, 14, 15, 16})
    assert errors == answer["rows"]["errors"] and job.rows_rejected == 10


def test_a_sku_with_an_invisible_character_on_two_rows_is_both_reasons(acme, client, media):
    manifest = HEADER + row("A\u200b1") + row("OK-1") + row("A\u200b1")
    client.force_login(acme.user)
    answer = check(client, manifest)[1]
    duplicate = r"sku 'A\u200b1' is on rows 2, 4; give each product once"
    assert answer["rows"] == {"rejected": 2, "errors": [
        {"row": 2, "field": "sku", "reason": INVISIBLE}, {"row": 2, "field": "sku", "reason": duplicate},
        {"row": 4, "field": "sku", "reason": INVISIBLE}, {"row": 4, "field": "sku", "reason": duplicate}]}
    assert imported_errors(client, manifest, {2, 4})[1] == answer["rows"]["errors"]


# --- the page's html ---------------------------------------------------------------------------------

def test_the_page_shows_the_rows_after_the_file_reads_well(acme, client, media):
    manifest = HEADER + row("A-1") + row("A\u200b1") + row("A-1") + row("B-1")
    client.force_login(acme.user)
    answer = check(client, manifest)[1]
    assert text(answer["html"]) == (
        OK.replace("{} products (SKUs)", "4 rows, 1 product (SKU) to add or update")  # A-1 twice, A<ZWSP>1: not taken
        + " The import will not take 3 rows of this file, for the reasons below; it imports the others "
        "(with “Reject the whole upload”, none). Correct them before you upload, or upload and download the failed "
        "rows from the upload's page to fix them there. Rows the import will not take Row Column Reason "
        "2 sku sku 'A-1' is on rows 2, 4; give each product once "
        f"3 sku {INVISIBLE} "
        "4 sku sku 'A-1' is on rows 2, 4; give each product once")
    assert 'data-check="rows"' in answer["html"] and 'data-check="errors"' not in answer["html"]


def test_the_page_says_how_many_rows_it_leaves_out(acme, client, media):
    manifest = HEADER + "".join(row(f"I\u200b{n}") for n in range(7)) + row("OK-1")
    client.force_login(acme.user)
    page = text(check(client, manifest)[1]["html"])
    assert page.startswith(OK.replace("{} products (SKUs)", "8 rows, 1 product (SKU) to add or update")
                           + " The import will not take 7 rows of this file")
    assert page.endswith("The first 5 rows of 7; all of them come back in the failed rows file.")


def test_the_rows_are_shown_beside_a_full_sync_count(acme, client, media):
    ProductFactory(merchant=acme, sku="OLD-1")
    manifest = HEADER + row("A-1") + row("A-1") + row("B-1")
    client.force_login(acme.user)
    status, answer = check(client, manifest, full_sync="true", confirm_unlist="1")
    assert (status, answer["full_sync"]["unlist"], answer["rows"]["rejected"]) == (200, 1, 2)
    assert text(answer["html"]) == (
        "A full sync of this file unlists 1 of your 1 listed products: OLD-1. The import will not take 2 rows of "
        "this file, for the reasons below; it imports the others (with “Reject the whole upload”, none). Correct "
        "them before you upload, or upload and download the failed rows from the upload's page to fix them there. "
        "Rows the import will not take Row Column Reason "
        "2 sku sku 'A-1' is on rows 2, 3; give each product once "
        "3 sku sku 'A-1' is on rows 2, 3; give each product once")


def test_a_file_without_such_rows_reads_as_before(acme, client, media):
    client.force_login(acme.user)
    status, answer = check(client, HEADER + row("A-1") + row("B-1", price="cheap"))  # a price is the import's to see
    assert (status, answer["rows"], text(answer["html"])) == (200, {"rejected": 0, "errors": []}, OK.format(2))


def test_a_file_that_cannot_be_used_has_no_rows(acme, client, media):
    client.force_login(acme.user)
    status, answer = check(client, "sku,prize\nA,1\nA,2\n")
    assert (status, answer["rows"]) == (400, None)
    assert "The import will not take" not in text(answer["html"])


# --- one read, bounded memory ------------------------------------------------------------------------

def manifest_upload(rows):
    return SimpleUploadedFile("catalog.csv", (HEADER + "".join(rows)).encode())


def peak(upload, **collectors):
    tracemalloc.start()
    try:
        check_manifest(upload, columns_known=known_columns(), **collectors)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["distinct", "one sku"])
def test_a_manifest_at_the_row_limit_is_checked_in_bounded_memory(kind):
    """100,000 rows: the rows' check keeps a number for each SKU beside the set the full sync count keeps, and no
    list of rows (one SKU on every row would make such a list 100,000 long, a few MiB)."""
    sku = {"distinct": lambda n: f"SKU-{n:06}", "one sku": lambda n: "SKU-1"}[kind]
    upload = manifest_upload(row(sku(n)) for n in range(100_000))
    baseline = peak(upload, skus=set())
    upload.seek(0)
    rejected = RejectedRows()
    with_rows = peak(upload, skus=set(), rejected=rejected)
    assert (rejected.count, len(rejected.errors)) == ((0, 0) if kind == "distinct" else (100_000, ROWS_SHOWN))
    assert with_rows < 2 * baseline + 1024 * 1024, (with_rows, baseline)

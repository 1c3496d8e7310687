"""SKUs with characters no one sees: refused by name and place, on the import, the product API and the admin.

A SKU copied from a web page or a spreadsheet often carries a ZERO WIDTH SPACE, a BOM, a
SOFT HYPHEN, a direction mark or a control character. ``A1`` and ``A<U+200B>1`` read the same,
but an import and the API made them two products that no one could tell apart; a NUL was
refused by the API in words that did not say where, and a tab inside a SKU was stored.
Characters that trimming removes (spaces, tabs, NO-BREAK SPACE at either end) are trimmed
as before; a NO-BREAK SPACE inside a SKU is refused as a look-alike (tests/test_sku_lookalikes.py).
"""

import json

import pytest
from django.contrib.auth.models import Permission

from p2w_search.uploads.manifest import sku_problem
from tests import test_key_forms as key_forms
from tests.factories import ProductFactory
from tests.test_imports import HEADER, upload

# Each character in "A<character>1", and the reason that SKU is refused for.
REFUSED = {
    "\u200b": r"sku 'A\u200b1' holds an invisible character, U+200B ZERO WIDTH SPACE, at position 2; remove it",
    "\ufeff": r"sku 'A\ufeff1' holds an invisible character, U+FEFF ZERO WIDTH NO-BREAK SPACE, at position 2; "
              "remove it",
    "\u00ad": r"sku 'A\xad1' holds an invisible character, U+00AD SOFT HYPHEN, at position 2; remove it",
    "\u200e": r"sku 'A\u200e1' holds an invisible character, U+200E LEFT-TO-RIGHT MARK, at position 2; remove it",
    "\u2060": r"sku 'A\u20601' holds an invisible character, U+2060 WORD JOINER, at position 2; remove it",
    "\t": r"sku 'A\t1' holds a control character, U+0009, at position 2; remove it",
    "\x00": r"sku 'A\x001' holds a control character, U+0000, at position 2; remove it",
    "\x85": r"sku 'A\x851' holds a control character, U+0085, at position 2; remove it",
    "\u2028": r"sku 'A\u20281' holds a line separator, U+2028 LINE SEPARATOR, at position 2; remove it",
    "\u2029": r"sku 'A\u20291' holds a paragraph separator, U+2029 PARAGRAPH SEPARATOR, at position 2; remove it",
}
CHARACTERS = list(REFUSED)


def row(sku, title="Mug"):
    return f"{sku},{title},,mug,5.00,EUR,true,red.png\n"


def jsonl_row(sku, title="Mug"):
    return json.dumps({"sku": sku, "title": title, "category": "mug", "price": "5.00", "images": ["red.png"]}) + "\n"


products = key_forms.skus  # (sku, title, listed) of a merchant's products
merchant, api = key_forms.merchant, key_forms.api  # fixtures: the merchant acme and its API client


@pytest.mark.parametrize("character", CHARACTERS)
def test_the_reason_names_the_character_and_where_it_is(character):
    assert sku_problem(f"A{character}1") == REFUSED[character]


@pytest.mark.parametrize("sku", ["A1", "caf\u00e9", "cafe\u0301", "A 1", "\u65e5\u672c-1", 15, None])
def test_skus_a_reader_sees_whole_have_no_problem(sku):
    assert sku_problem(sku) is None


def test_several_such_characters_are_counted_and_a_long_sku_is_shown_cut():
    assert sku_problem("\ufeffA\u200b\u200e1") == (
        r"sku '\ufeffA\u200b\u200e1' holds an invisible character, U+FEFF ZERO WIDTH NO-BREAK SPACE, at position 1, "
        "and 2 more at positions 3, 4; remove them")
    assert sku_problem("X" * 70 + "\u200b") == (
        "sku '" + "X" * 60 + "…' holds an invisible character, U+200B ZERO WIDTH SPACE, at position 71; remove it")


@pytest.mark.parametrize("character", CHARACTERS)
def test_the_api_refuses_such_a_sku_on_create_and_update(api, merchant, character):
    """"A<U+200B>1" beside "A1" made a second product no one could tell from the first; a NUL was "Null characters
    are not allowed.", which did not say where."""
    product = ProductFactory(merchant=merchant, sku="A1", title="First")
    response = api.post("/api/products/", {"sku": f"A{character}1", "title": "t", "category": "mug", "price": "1"},
                        format="json")
    assert (response.status_code, response.json()) == (400, {"sku": [REFUSED[character]]})
    response = api.patch(f"/api/products/{product.pk}/", {"sku": f"A{character}1"}, format="json")
    assert (response.status_code, response.json()) == (400, {"sku": [REFUSED[character]]})
    assert products(merchant) == [("A1", "First", True)]


@pytest.mark.parametrize("sent, stored", [
    ("\u00a0A2\u00a0", "A2"), ("\tA2\t", "A2"), ("\u2028A2\x85", "A2")])
def test_the_api_trims_whitespace_at_the_ends(api, merchant, sent, stored):
    response = api.post("/api/products/", {"sku": sent, "title": "t", "category": "mug", "price": "1"},
                        format="json")
    assert (response.status_code, response.json()["sku"]) == (201, stored)
    assert products(merchant) == [(stored, "t", True)]


def test_an_import_rejects_each_such_row_and_writes_the_others(api, merchant, media):
    """Each row's own error, field sku; the rows beside them are imported. "A<U+200B>1" made a second "A1"."""
    ProductFactory(merchant=merchant, sku="A1", title="Old")
    manifest = HEADER + row("A1", "New") + "".join(row(f"A{c}1") for c in CHARACTERS) + row("B1")
    job, progress = upload(api, manifest=manifest, policy="skip")
    expected = [{"row": number, "field": "sku", "reason": REFUSED[c]}
                for number, c in enumerate(CHARACTERS, start=3)]
    assert (progress["state"], progress["rows_accepted"], progress["rows_rejected"]) == ("done", 2, 10)
    assert progress["errors"] == expected
    assert products(merchant) == [("A1", "New", True), ("B1", "Mug", True)]


def test_a_bom_in_the_first_cell_of_a_later_line_is_named_at_position_one(api, merchant, media):
    """Two exports pasted together: the second one's BOM starts a row (the file's own BOM is read away)."""
    manifest = "\ufeff" + HEADER + row("B1") + "\ufeff" + row("B2")
    job, progress = upload(api, manifest=manifest, policy="skip")
    assert progress["errors"] == [{"row": 3, "field": "sku", "reason": (
        r"sku '\ufeffB2' holds an invisible character, U+FEFF ZERO WIDTH NO-BREAK SPACE, at position 1; remove it")}]
    assert products(merchant) == [("B1", "Mug", True)]


def test_whitespace_at_the_ends_of_a_csv_cell_is_trimmed(api, merchant, media):
    manifest = HEADER + row("\u00a0C1\u00a0") + row("\tC2\u2028")
    job, progress = upload(api, manifest=manifest)
    assert (progress["rows_accepted"], progress["errors"]) == (2, [])
    assert products(merchant) == [("C1", "Mug", True), ("C2", "Mug", True)]


def test_a_json_lines_import_rejects_them_alike(api, merchant, media):
    manifest = jsonl_row("A\x001") + jsonl_row("A\u20281") + jsonl_row("\u200bA1\u200b") + jsonl_row("B1")
    job, progress = upload(api, manifest=manifest, name="catalog.jsonl", policy="skip")
    assert progress["errors"] == [
        {"row": 1, "field": "sku", "reason": REFUSED["\x00"]},
        {"row": 2, "field": "sku", "reason": REFUSED["\u2028"]},
        {"row": 3, "field": "sku", "reason": r"sku '\u200bA1\u200b' holds an invisible character, U+200B ZERO WIDTH "
                                             "SPACE, at position 1, and 1 more at position 4; remove them"}]
    assert products(merchant) == [("B1", "Mug", True)]


def test_a_row_with_another_problem_too_names_both(api, merchant, media):
    manifest = HEADER + "A\u200b1,Mug,,mug,cheap,EUR,true,red.png\n"
    job, progress = upload(api, manifest=manifest, policy="skip")
    assert progress["errors"] == [{"row": 2, "field": "sku", "reason": REFUSED["\u200b"]},
                                  {"row": 2, "field": "price", "reason": "A valid number is required."}]


def test_a_full_sync_spares_the_listed_sku_a_rejected_row_names(api, merchant, media):
    """A product stored with a ZERO WIDTH SPACE before this check: its row is rejected, and the product stays
    listed, as for any rejected row; the product the file leaves out is unlisted."""
    ProductFactory(merchant=merchant, sku="A\u200b1", title="Old")
    ProductFactory(merchant=merchant, sku="B1", title="Old")
    ProductFactory(merchant=merchant, sku="C1", title="Old")
    ProductFactory(merchant=merchant, sku="D1", title="Old")
    manifest = HEADER + row("A\u200b1", "New") + row("B1", "New") + row("C1", "New")
    job, progress = upload(api, manifest=manifest, policy="skip", full_sync="true", confirm_unlist="1")
    assert (progress["state"], progress["unlisted_skus"], progress["errors"]) == (
        "done", ["D1"], [{"row": 2, "field": "sku", "reason": REFUSED["\u200b"]}])
    assert products(merchant) == [("A\u200b1", "Old", True), ("B1", "New", True), ("C1", "New", True),
                                  ("D1", "Old", False)]


def test_policy_reject_writes_nothing(api, merchant, media):
    job, progress = upload(api, manifest=HEADER + row("B1") + row("A\u200e1"), policy="reject")
    assert (progress["state"], progress["errors"]) == ("rejected", [{"row": 3, "field": "sku",
                                                                  "reason": REFUSED["\u200e"]}])
    assert products(merchant) == []


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["add_product", "change_product",
                                                                       "view_product"]))
    client.force_login(user)
    return client


def admin_form(merchant, sku):
    return {"merchant": merchant.pk, "sku": sku, "title": "t", "category": "mug", "price": "1", "currency": "EUR",
            "in_stock": "on", "listed": "on", "p2w_images-TOTAL_FORMS": "0", "p2w_images-INITIAL_FORMS": "0"}


@pytest.mark.parametrize("character", ["\u200b", "\x00", "\t", "\u2029"])
def test_the_admin_refuses_such_a_sku_on_the_field(staff, merchant, character):
    product = ProductFactory(merchant=merchant, sku="A1", title="First")
    response = staff.post("/admin/catalog/product/add/", admin_form(merchant, f"A{character}1"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [REFUSED[character]]}
    response = staff.post(f"/admin/catalog/product/{product.pk}/change/", admin_form(merchant, f"A{character}1"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [REFUSED[character]]}
    assert products(merchant) == [("A1", "First", True)]


def test_the_admin_trims_a_no_break_space_at_the_ends(staff, merchant):
    response = staff.post("/admin/catalog/product/add/", admin_form(merchant, "\u00a0A2\u00a0"))
    assert response.status_code == 302
    assert products(merchant) == [("A2", "t", True)]


def test_the_rejected_rows_file_keeps_the_sku_as_written_with_the_reason(api, merchant, media):
    """Corrected there and sent again, the file imports: the character is removed by the merchant, not by us."""
    job, progress = upload(api, manifest=HEADER + row("B1") + row("A\u200b1"))
    content = b"".join(api.get(progress["rejected_rows_url"]).streaming_content).decode()
    assert content == (HEADER.strip() + ",error\r\n" + row("A\u200b1").strip()
                       + ',"sku: ' + REFUSED["\u200b"] + '"\r\n')

"""SKUs that look like another: a space other than a plain one, full-width and half-width forms; and the admin's
one error for a SKU the merchant has.

``A<NO-BREAK SPACE>1`` beside ``A 1``, or ``ＳＫＵ１`` (full-width, as Japanese and Chinese input methods type
it) beside ``SKU1``: NFC (``sku_key``) does not join them, so an import, the product API and the admin each made
a second product that no one could tell from the first. They are refused by name and place, with what to write
instead, and never changed silently. Whitespace at the ends of a SKU is trimmed, as before: a NO-BREAK SPACE or an
IDEOGRAPHIC SPACE there is gone, not refused. The admin's add form answered an exact duplicate SKU twice (the
unique constraint's "Product with this Merchant and Sku already exists." and the NFC constraint's words).
"""

import json

import pytest

from p2w_search.uploads.manifest import sku_problem
from shop_demo.catalog.admin import DUPLICATE_SKU_IN_ADMIN
from tests import test_invisible_keys as invisible_keys
from tests import test_key_forms as key_forms
from tests.factories import MerchantFactory, ProductFactory
from tests.test_imports import HEADER, upload

# Each space in "A<space>1", and the reason that SKU is refused for.
SPACES = {
    "\u00a0": r"sku 'A\xa01' holds a space other than a plain one, U+00A0 NO-BREAK SPACE, at position 2; write a "
              "plain space instead",
    "\u2007": r"sku 'A\u20071' holds a space other than a plain one, U+2007 FIGURE SPACE, at position 2; write a "
              "plain space instead",
    "\u202f": r"sku 'A\u202f1' holds a space other than a plain one, U+202F NARROW NO-BREAK SPACE, at position 2; "
              "write a plain space instead",
    "\u3000": r"sku 'A\u30001' holds a space other than a plain one, U+3000 IDEOGRAPHIC SPACE, at position 2; write "
              "a plain space instead",
    "\u2002": r"sku 'A\u20021' holds a space other than a plain one, U+2002 EN SPACE, at position 2; write a plain "
              "space instead",
    "\u2003": r"sku 'A\u20031' holds a space other than a plain one, U+2003 EM SPACE, at position 2; write a plain "
              "space instead",
}
# SKUs in full-width or half-width forms, and the reason each is refused for (naming the SKU as NFKC writes it).
FORMS = {
    "ＳＫＵ１": "sku 'ＳＫＵ１' holds a full-width form, U+FF33 FULLWIDTH LATIN CAPITAL LETTER S, at position 1, "
              "and 3 more at positions 2, 3, 4; write 'SKU1' instead",
    "A-１": "sku 'A-１' holds a full-width form, U+FF11 FULLWIDTH DIGIT ONE, at position 3; write 'A-1' instead",
    "\uffe5100": "sku '￥100' holds a full-width form, U+FFE5 FULLWIDTH YEN SIGN, at position 1; write '¥100' instead",
    "ｶﾀ-1": "sku 'ｶﾀ-1' holds a half-width form, U+FF76 HALFWIDTH KATAKANA LETTER KA, at position 1, and 1 more at "
            "position 2; write 'カタ-1' instead",
    # A half-width voiced sound mark is a character of its own; NFKC writes KA and it as one, GA.
    "ｶﾞ1": "sku 'ｶﾞ1' holds a half-width form, U+FF76 HALFWIDTH KATAKANA LETTER KA, at position 1, and 1 more at "
           "position 2; write 'ガ1' instead",
}
# SKUs with one character for several letters (it passed: "proﬁle-1" beside "profile-1" made a second product).
LIGATURES = {
    "pro\ufb01le-1": "sku 'pro\ufb01le-1' holds a ligature of several letters, U+FB01 LATIN SMALL LIGATURE FI, at "
                     "position 4; write 'profile-1' instead",
    "\u01c9ubljana-2": "sku '\u01c9ubljana-2' holds a ligature of several letters, U+01C9 LATIN SMALL LETTER LJ, at "
                       "position 1; write 'ljubljana-2' instead",
    "\u0132SSEL-\ufb00": "sku '\u0132SSEL-\ufb00' holds a ligature of several letters, U+0132 LATIN CAPITAL LIGATURE "
                         "IJ, at position 1, and 1 more at position 7; write 'IJSSEL-ff' instead",
}
LOOKALIKES = {**{f"A{space}1": reason for space, reason in SPACES.items()}, **FORMS, **LIGATURES}
# SKUs a reader tells apart from any other: kept as written.
FINE = ["A1", "A 1", "A 1 B", "caf\u00e9", "cafe\u0301", "\u00c4-\u00d6-\u00df", "\u65e5\u672c-1", "カタ-1", "ガ1",
        "\uac00\ub098-1", "\u00a5100", "SKU/1_x.2", "\u2167-A", "\u2116-5", "5\u00b5F"]  # a Roman numeral, signs

products = key_forms.skus  # (sku, title, listed) of a merchant's products
merchant, api = key_forms.merchant, key_forms.api  # fixtures: the merchant acme and its API client
staff, admin_form = invisible_keys.staff, invisible_keys.admin_form  # a fixture: a staff member's client; a helper


def row(sku, title="Mug"):
    return f"{sku},{title},,mug,5.00,EUR,true,red.png\n"


def jsonl_row(sku, title="Mug"):
    return json.dumps({"sku": sku, "title": title, "category": "mug", "price": "5.00", "images": ["red.png"]}) + "\n"


def new_product(sku):
    return {"sku": sku, "title": "t", "category": "mug", "price": "1"}


@pytest.mark.parametrize("sku", list(LOOKALIKES))
def test_the_reason_names_the_character_where_it_is_and_what_to_write(sku):
    assert sku_problem(sku) == LOOKALIKES[sku]


@pytest.mark.parametrize("sku", FINE)
def test_skus_that_look_like_no_other_have_no_problem(sku):
    assert sku_problem(sku) is None


def test_several_spaces_ask_for_plain_spaces():
    assert sku_problem("A\u00a0B\u2007C") == (
        r"sku 'A\xa0B\u2007C' holds a space other than a plain one, U+00A0 NO-BREAK SPACE, at position 2, and 1 "
        "more at position 4; write plain spaces instead")


def test_spaces_and_wide_forms_together_name_the_first_and_the_whole_sku_to_write():
    assert sku_problem("A\u3000Ｂ") == (
        r"sku 'A\u3000Ｂ' holds a space other than a plain one, U+3000 IDEOGRAPHIC SPACE, at position 2, and 1 more "
        "at position 3; write 'A B' instead")
    assert sku_problem("Ａ\u00a01") == (
        r"sku 'Ａ\xa01' holds a full-width form, U+FF21 FULLWIDTH LATIN CAPITAL LETTER A, at position 1, and 1 more "
        "at position 2; write 'A 1' instead")


def test_a_character_no_one_sees_is_named_first():
    """Its reason is the one the invisible-character check gave; the space is named once that is removed."""
    assert sku_problem("A\u200b\u00a01") == (
        r"sku 'A\u200b\xa01' holds an invisible character, U+200B ZERO WIDTH SPACE, at position 2; remove it")


def test_a_long_sku_is_shown_cut_and_so_is_what_to_write():
    assert sku_problem("X" * 70 + "１") == (
        "sku '" + "X" * 60 + "…' holds a full-width form, U+FF11 FULLWIDTH DIGIT ONE, at position 71; write '"
        + "X" * 60 + "…' instead")


@pytest.mark.parametrize("sku", list(LOOKALIKES))
def test_the_api_refuses_such_a_sku_on_create_and_update(api, merchant, sku):
    """"A<NO-BREAK SPACE>1" and "ＳＫＵ１" were stored: a second product beside "A 1" and "SKU1"."""
    product = ProductFactory(merchant=merchant, sku="A 1", title="First")
    response = api.post("/api/products/", new_product(sku), format="json")
    assert (response.status_code, response.json()) == (400, {"sku": [LOOKALIKES[sku]]})
    response = api.patch(f"/api/products/{product.pk}/", {"sku": sku}, format="json")
    assert (response.status_code, response.json()) == (400, {"sku": [LOOKALIKES[sku]]})
    assert products(merchant) == [("A 1", "First", True)]


@pytest.mark.parametrize("sku", FINE)
def test_the_api_stores_a_sku_that_looks_like_no_other_as_written(api, merchant, sku):
    response = api.post("/api/products/", new_product(sku), format="json")
    assert (response.status_code, response.json()["sku"]) == (201, sku)
    assert products(merchant) == [(sku, "t", True)]


@pytest.mark.parametrize("sent", ["\u00a0A2\u00a0", "\u3000A2\u3000", "\u2007A2\u202f", " A2\u2003"])
def test_the_api_trims_such_spaces_at_the_ends(api, merchant, sent):
    response = api.post("/api/products/", new_product(sent), format="json")
    assert (response.status_code, response.json()["sku"]) == (201, "A2")
    assert products(merchant) == [("A2", "t", True)]


def test_an_import_rejects_each_such_row_and_writes_the_others(api, merchant, media):
    """Each row's own error, field sku; the rows beside them are imported and nothing is changed silently."""
    ProductFactory(merchant=merchant, sku="A 1", title="Old")
    ProductFactory(merchant=merchant, sku="SKU1", title="Old")
    manifest = HEADER + row("A 1", "New") + "".join(row(sku) for sku in LOOKALIKES) + row("B1")
    job, progress = upload(api, manifest=manifest, policy="skip")
    expected = [{"row": number, "field": "sku", "reason": reason}
                for number, reason in enumerate(LOOKALIKES.values(), start=3)]
    assert (progress["state"], progress["rows_accepted"], progress["rows_rejected"]) == ("done", 2, len(LOOKALIKES))
    assert progress["errors"] == expected
    assert products(merchant) == [("A 1", "New", True), ("B1", "Mug", True), ("SKU1", "Old", True)]


def test_an_import_keeps_skus_that_look_like_no_other_and_trims_spaces_at_the_ends(api, merchant, media):
    fine = [sku for sku in FINE if sku != "cafe\u0301"]  # café twice, composed and decomposed, is one SKU twice
    manifest = HEADER + "".join(row(sku) for sku in fine) + row("\u00a0C1\u00a0") + row("\u3000C2\u2007")
    job, progress = upload(api, manifest=manifest)
    assert (progress["rows_accepted"], progress["errors"]) == (len(fine) + 2, [])
    assert products(merchant) == sorted([(sku, "Mug", True) for sku in fine + ["C1", "C2"]])


def test_a_json_lines_import_rejects_them_alike(api, merchant, media):
    manifest = jsonl_row("ＳＫＵ１") + jsonl_row("A\u202f1") + jsonl_row("\u00a0B2\u00a0") + jsonl_row("ｶﾀ-1")
    job, progress = upload(api, manifest=manifest, name="catalog.jsonl", policy="skip")
    assert progress["errors"] == [{"row": 1, "field": "sku", "reason": FORMS["ＳＫＵ１"]},
                                  {"row": 2, "field": "sku", "reason": SPACES["\u202f"]},
                                  {"row": 4, "field": "sku", "reason": FORMS["ｶﾀ-1"]}]
    assert products(merchant) == [("B2", "Mug", True)]


def test_a_full_sync_spares_a_listed_sku_a_rejected_row_names(api, merchant, media):
    """A product stored with a full-width SKU before this check: its row is rejected and the product stays listed,
    as for any rejected row; the product the file leaves out is unlisted."""
    ProductFactory(merchant=merchant, sku="ＳＫＵ１", title="Old")
    ProductFactory(merchant=merchant, sku="B1", title="Old")
    ProductFactory(merchant=merchant, sku="C1", title="Old")
    ProductFactory(merchant=merchant, sku="D1", title="Old")
    manifest = HEADER + row("ＳＫＵ１", "New") + row("B1", "New") + row("C1", "New")
    job, progress = upload(api, manifest=manifest, policy="skip", full_sync="true", confirm_unlist="1")
    assert (progress["state"], progress["unlisted_skus"], progress["errors"]) == (
        "done", ["D1"], [{"row": 2, "field": "sku", "reason": FORMS["ＳＫＵ１"]}])
    assert products(merchant) == [("B1", "New", True), ("C1", "New", True), ("D1", "Old", False),
                                  ("ＳＫＵ１", "Old", True)]


def test_policy_reject_writes_nothing(api, merchant, media):
    job, progress = upload(api, manifest=HEADER + row("B1") + row("A\u00a01"), policy="reject")
    assert (progress["state"], progress["errors"]) == ("rejected", [{"row": 3, "field": "sku",
                                                                  "reason": SPACES["\u00a0"]}])
    assert products(merchant) == []


def test_the_rejected_rows_file_keeps_the_sku_as_written_with_the_reason(api, merchant, media):
    job, progress = upload(api, manifest=HEADER + row("B1") + row("ＳＫＵ１"))
    content = b"".join(api.get(progress["rejected_rows_url"]).streaming_content).decode()
    assert content == HEADER.strip() + ",error\r\n" + row("ＳＫＵ１").strip() + ',"sku: ' + FORMS["ＳＫＵ１"] + '"\r\n'


@pytest.mark.parametrize("sku", ["A\u00a01", "A\u30001", "ＳＫＵ１", "ｶﾞ1"])
def test_the_admin_refuses_such_a_sku_on_the_field(staff, merchant, sku):
    product = ProductFactory(merchant=merchant, sku="A 1", title="First")
    response = staff.post("/admin/catalog/product/add/", admin_form(merchant, sku))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [LOOKALIKES[sku]]}
    response = staff.post(f"/admin/catalog/product/{product.pk}/change/", admin_form(merchant, sku))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [LOOKALIKES[sku]]}
    assert products(merchant) == [("A 1", "First", True)]


def test_the_admin_trims_such_spaces_at_the_ends(staff, merchant):
    response = staff.post("/admin/catalog/product/add/", admin_form(merchant, "\u3000A2\u00a0"))
    assert response.status_code == 302
    assert products(merchant) == [("A2", "t", True)]


def test_the_admin_answers_a_sku_the_merchant_has_with_one_error_on_the_field(staff, merchant):
    """It showed two: Django's "Product with this Merchant and Sku already exists." and the NFC constraint's."""
    ProductFactory(merchant=merchant, sku="A1", title="First")
    response = staff.post("/admin/catalog/product/add/", admin_form(merchant, "A1"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [DUPLICATE_SKU_IN_ADMIN]}
    page = response.content.decode()
    assert (page.count("This merchant already has a product with this SKU"), "already exists" in page,
            "reads the same" in page) == (1, False, False)
    assert products(merchant) == [("A1", "First", True)]


def test_the_admin_change_form_answers_it_alike_and_keeps_a_products_own_sku(staff, merchant):
    ProductFactory(merchant=merchant, sku="A1", title="First")
    second = ProductFactory(merchant=merchant, sku="B1", title="Second")
    response = staff.post(f"/admin/catalog/product/{second.pk}/change/", admin_form(merchant, "A1"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [DUPLICATE_SKU_IN_ADMIN]}
    response = staff.post(f"/admin/catalog/product/{second.pk}/change/", admin_form(merchant, "B1"))
    assert response.status_code == 302
    assert products(merchant) == [("A1", "First", True), ("B1", "t", True)]


def test_the_admin_adds_a_sku_another_merchant_has(staff, merchant):
    ProductFactory(merchant=MerchantFactory(slug="rival"), sku="A1", title="Theirs")
    response = staff.post("/admin/catalog/product/add/", admin_form(merchant, "A1"))
    assert response.status_code == 302
    assert products(merchant) == [("A1", "t", True)]


def test_the_admin_still_answers_a_same_looking_sku_once(staff, merchant):
    """An exact duplicate is the sku field's error; a SKU that only reads the same stays the NFC constraint's."""
    ProductFactory(merchant=merchant, sku=key_forms.CAFE)
    response = staff.post("/admin/catalog/product/add/", admin_form(merchant, key_forms.CAFE_NFD))
    assert response.context["adminform"].form.errors == {"__all__": [
        "This merchant has a product whose SKU reads the same (the same letters, maybe written in other Unicode "
        "code points); give that one, or another SKU."]}

"""SKUs that look like other SKUs because some of their letters are of another alphabet (script).

A SKU typed with a Russian or Greek keyboard layout holds Cyrillic or Greek letters that look exactly like Latin
ones: ``PR<GREEK CAPITAL LETTER OMICRON>-5`` beside ``PRO-5``, or ``<CYRILLIC CAPITAL LETTER A>-1`` beside ``A-1``.
Both passed every check, made a second product that no one could tell from the first, and a full sync unlisted the
real one. Now a SKU that mixes the letters of two such alphabets is refused by name and place (``sku_problem``, so
the import, the product API and the admin alike), with what to write instead; a SKU wholly in one alphabet stays
allowed, but an import refuses a new one that looks the same as another SKU of the catalog or of the file; and a
full sync spares the listed product such a rejected row names (``seen_sku``). The SKUs in this file are written
with escapes: printed, they look the same.
"""

import pytest

from p2w_search.uploads.manifest import seen_sku, sku_problem
from shop_demo.catalog.imports import ProductImportSerializer
from shop_demo.catalog.models import Product
from tests import test_invisible_keys as invisible_keys
from tests import test_key_forms as key_forms
from tests.factories import ProductFactory
from tests.test_imports import HEADER, IMAGES, named, upload, zipped
from tests.test_upload_check_rows import check

products, row = key_forms.skus, key_forms.row  # (sku, title, listed) of a merchant's products; one CSV row
merchant, api = key_forms.merchant, key_forms.api  # fixtures: the merchant acme and its API client
staff_client, admin_form = invisible_keys.staff, invisible_keys.admin_form  # a fixture: staff's client; a helper

# SKUs that mix alphabets, and the reason each is refused for.
MIXED = {
    # PRO-5 with a Greek Omicron: two Latin letters, one Greek; the Greek one is out of place.
    "PR\u039f-5": "sku 'PR\u039f-5' holds a Greek letter among Latin ones, U+039F GREEK CAPITAL LETTER OMICRON, at "
                  "position 3; write 'PRO-5' in Latin letters instead",
    # As many Latin letters as Cyrillic ones: the Cyrillic one is out of place.
    "\u0410B-1": "sku '\u0410B-1' holds a Cyrillic letter among Latin ones, U+0410 CYRILLIC CAPITAL LETTER A, at "
                 "position 1; write 'AB-1' in Latin letters instead",
    "p\u0430rt-1": "sku 'p\u0430rt-1' holds a Cyrillic letter among Latin ones, U+0430 CYRILLIC SMALL LETTER A, at "
                   "position 2; write 'part-1' in Latin letters instead",
    "\u03bdalve": "sku '\u03bdalve' holds a Greek letter among Latin ones, U+03BD GREEK SMALL LETTER NU, at "
                  "position 1; write 'valve' in Latin letters instead",
    "\u0420R\u041eDU\u0421T": "sku '\u0420R\u041eDU\u0421T' holds a Cyrillic letter among Latin ones, U+0420 "
                              "CYRILLIC CAPITAL LETTER ER, at position 1, and 2 more at positions 3, 6; write "
                              "'PRODUCT' in Latin letters instead",
    # A Latin A typed among Cyrillic letters: the Latin one is out of place, written back in Cyrillic.
    "\u041c\u041e\u0421\u041a\u0412A-1": "sku '\u041c\u041e\u0421\u041a\u0412A-1' holds a Latin letter among "
                                         "Cyrillic ones, U+0041 LATIN CAPITAL LETTER A, at position 6; write "
                                         "'\u041c\u041e\u0421\u041a\u0412\u0410-1' in Cyrillic letters instead",
    # Three alphabets: every letter outside the most used one is named.
    "ABC\u039f\u041e": "sku 'ABC\u039f\u041e' holds a Greek letter among Latin ones, U+039F GREEK CAPITAL LETTER "
                       "OMICRON, at position 4, and 1 more at position 5; write 'ABCOO' in Latin letters instead",
    # A letter that looks like no Latin letter: nothing to write in its place.
    "A-\u04111": "sku 'A-\u04111' holds a Cyrillic letter among Latin ones, U+0411 CYRILLIC CAPITAL LETTER BE, at "
                 "position 3; write all its letters in one alphabet, Latin or Cyrillic",
    "\u0394T-100": "sku '\u0394T-100' holds a Greek letter among Latin ones, U+0394 GREEK CAPITAL LETTER DELTA, at "
                   "position 1; write all its letters in one alphabet, Latin or Greek",
    "\u0410\u0411\u0412\u0393": "sku '\u0410\u0411\u0412\u0393' holds a Greek letter among Cyrillic ones, U+0393 "
                                "GREEK CAPITAL LETTER GAMMA, at position 4; write all its letters in one alphabet, "
                                "Cyrillic or Greek",
    # An Armenian keyboard's OH among Latin letters (it passed: only Cyrillic and Greek were known), a Cherokee GO
    # drawn as an A, and a Latin letter among Armenian ones that has no Armenian look-alike.
    "PR\u0555-5": "sku 'PR\u0555-5' holds an Armenian letter among Latin ones, U+0555 ARMENIAN CAPITAL LETTER OH, at "
                  "position 3; write 'PRO-5' in Latin letters instead",
    "B\u13aaG": "sku 'B\u13aaG' holds a Cherokee letter among Latin ones, U+13AA CHEROKEE LETTER GO, at position 2; "
                "write 'BAG' in Latin letters instead",
    "\u0531\u0532A": "sku '\u0531\u0532A' holds a Latin letter among Armenian ones, U+0041 LATIN CAPITAL LETTER A, "
                     "at position 3; write all its letters in one alphabet, Armenian or Latin",
}
# SKUs in one alphabet, or with letters of alphabets that hold no Latin look-alike: allowed as written.
ONE_ALPHABET = ["\u0410\u0411\u0412-1", "\u0410-1", "\u0391\u0392\u0393-1", "\u03a9-5", "caf\u00e9-1", "Stra\u00dfe",
                "\u65e5\u672c-A", "5\u00b5F", "\u2167-A", "A-1", "\u0531\u0532\u0555-1", "\u13aa\u13f4-1"]


@pytest.mark.parametrize("sku", list(MIXED))
def test_a_sku_that_mixes_alphabets_is_refused_naming_the_letter_and_what_to_write(sku):
    assert sku_problem(sku) == MIXED[sku]


@pytest.mark.parametrize("sku", ONE_ALPHABET)
def test_a_sku_in_one_alphabet_has_no_problem(sku):
    """All Cyrillic, all Greek: merchants in those languages use such SKUs. Digits, signs, the MICRO SIGN and Roman
    numerals are of no alphabet; Japanese has no letter that looks Latin."""
    assert sku_problem(sku) is None


def test_a_character_no_one_sees_and_a_full_width_form_are_named_first():
    assert sku_problem("\u0410\u200bB") == ("sku '\u0410\\u200bB' holds an invisible character, U+200B ZERO WIDTH "
                                           "SPACE, at position 2; remove it")
    assert sku_problem("\uff21\u0411") == ("sku '\uff21\u0411' holds a full-width form, U+FF21 FULLWIDTH LATIN "
                                           "CAPITAL LETTER A, at position 1; write 'A\u0411' instead")


def test_the_letters_that_look_latin_are_seen_as_latin():
    assert seen_sku("\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0430\u0435\u043e\u0440"
                    "\u0441\u0445\u0443\u0456\u0458\u0455") == "ABEKMHOPCTXaeopcxyijs"
    assert seen_sku("\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7\u03bf"
                    "\u03bd") == "ABEZHIKMNOPTYXov"
    assert seen_sku("\u0555\u054d\u0585\u057d") == "OUou"
    assert seen_sku("\u13aa\u13f4\u13df\u13ac\u13bb\u13ab\u13e6\u13b7\u13e2\u13da\u13a2\u13d9\u13b3\u13c3\u13de"
                    "\u13d2") == "ABCEHJKMPSTVWZLR"


@pytest.mark.parametrize("sku, seen", [
    ("PR\u039f-5", "PRO-5"), ("\u0410-1", "A-1"), ("\u0410\u0411\u0412-1", "A\u0411B-1"), ("A-1", "A-1"),
    ("\u0394\u0391", "\u0394A"), ("\u0410\u200b1", "A1"), (15, 15)])
def test_a_sku_is_seen_with_latin_letters_for_those_it_shows(sku, seen):
    """Only letters that look like a Latin one: Cyrillic capital be and Greek capital delta stay."""
    assert seen_sku(sku) == seen


def test_letters_that_only_resemble_latin_ones_are_seen_as_written():
    """Cyrillic small be and ka, Greek small delta, alpha and iota: like b, k, d, a and i in some fonts only."""
    assert seen_sku("\u0431\u03b4\u03b1\u03b9\u043a") == "\u0431\u03b4\u03b1\u03b9\u043a"


def new_product(sku):
    return {"sku": sku, "title": "t", "category": "mug", "price": "1"}


def test_the_admin_refuses_such_a_sku_on_the_field(staff_client, merchant):
    """The admin's SKU field asks sku_problem: nothing of the admin changed for this."""
    product = ProductFactory(merchant=merchant, sku="PRO-5", title="First")
    response = staff_client.post("/admin/catalog/product/add/", admin_form(merchant, "PR\u039f-5"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [MIXED["PR\u039f-5"]]}
    response = staff_client.post(f"/admin/catalog/product/{product.pk}/change/", admin_form(merchant, "\u0410B-1"))
    assert response.context["adminform"].form.errors == {"sku": [MIXED["\u0410B-1"]]}
    response = staff_client.post("/admin/catalog/product/add/", admin_form(merchant, "\u0410\u0411\u0412-1"))
    assert response.status_code == 302
    assert products(merchant) == [("PRO-5", "First", True), ("\u0410\u0411\u0412-1", "t", True)]


def test_the_api_refuses_such_a_sku_with_a_400(api, merchant):
    response = api.post("/api/products/", new_product("PR\u039f-5"), format="json")
    assert (response.status_code, response.json()) == (400, {"sku": [MIXED["PR\u039f-5"]]})
    assert products(merchant) == []


def test_an_import_rejects_rows_that_mix_alphabets_and_writes_the_others(api, merchant, media):
    manifest = HEADER + row("PR\u039f-5") + row("\u0410\u0411\u0412-1") + row("p\u0430rt-1") + row("B-1")
    job, progress = upload(api, manifest=manifest, policy="skip")
    assert (progress["state"], progress["rows_accepted"], progress["errors"]) == ("done", 2, [
        {"row": 2, "field": "sku", "reason": MIXED["PR\u039f-5"]},
        {"row": 4, "field": "sku", "reason": MIXED["p\u0430rt-1"]}])
    assert products(merchant) == [("B-1", "Mug", True), ("\u0410\u0411\u0412-1", "Mug", True)]


def test_the_upload_check_lists_such_a_row_in_the_imports_words(client, merchant, media):
    """The merchant pages' check asks sku_problem too: the row is named before the images are sent."""
    client.force_login(merchant.user)
    status, answer = check(client, HEADER + row("B-1") + row("PR\u039f-5"))
    assert (status, answer["rows"]["rejected"], answer["rows"]["errors"]) == (
        200, 1, [{"row": 3, "field": "sku", "reason": MIXED["PR\u039f-5"]}])


def test_a_full_sync_spares_the_listed_sku_a_row_that_mixes_alphabets_names(api, merchant, media):
    """PRO-5 typed with a Greek Omicron: the row is rejected and PRO-5 stays listed; it was unlisted."""
    for sku in ("PRO-5", "B-1", "C-1", "D-1"):
        ProductFactory(merchant=merchant, sku=sku, title="Old")
    manifest = HEADER + row("PR\u039f-5", "New") + row("B-1", "New") + row("C-1", "New")
    job, progress = upload(api, manifest=manifest, policy="skip", full_sync="true", confirm_unlist="1")
    assert (progress["state"], progress["unlisted_skus"], progress["errors"]) == (
        "done", ["D-1"], [{"row": 2, "field": "sku", "reason": MIXED["PR\u039f-5"]}])
    assert products(merchant) == [("B-1", "New", True), ("C-1", "New", True), ("D-1", "Old", False),
                                  ("PRO-5", "Old", True)]


# --- SKUs wholly in another alphabet that look the same as another SKU ---------------------------------------

IN_CATALOG = (r"sku '\u0410-1' looks the same as 'A-1', a SKU of your catalog, but is written in other characters: "
              "they would be two products no one can tell apart; to update that product, copy its SKU from your "
              "catalog; for another product, give a SKU that looks like no other")


def in_file(sku, *others):
    """The reason of a row whose SKU ``sku`` (escaped) looks like ``others``, ``(escaped SKU, "row 4")`` each."""
    named = " and as ".join(f"{other} on {rows}" for other, rows in others)
    return (f"sku {sku} looks the same as {named}, but is written in other characters: they would be two products "
            "no one can tell apart; give each product a SKU that looks like no other")


def test_a_new_cyrillic_sku_that_looks_like_one_of_the_catalog_is_refused(api, merchant, media):
    """The catalog has A-1 (Latin); the file writes it in Cyrillic. It became a second A-1."""
    ProductFactory(merchant=merchant, sku="A-1", title="Old")
    job, progress = upload(api, manifest=HEADER + row("\u0410-1", "New") + row("B-1"), policy="skip")
    assert (progress["state"], progress["rows_accepted"], progress["errors"]) == (
        "done", 1, [{"row": 2, "field": "sku", "reason": IN_CATALOG}])
    assert products(merchant) == [("A-1", "Old", True), ("B-1", "Mug", True)]


@pytest.mark.parametrize("catalog, new", [("OU-1", "\u0555\u054d-1"), ("SA-1", "\u13da\u13aa-1")])
def test_a_new_armenian_or_cherokee_sku_that_looks_like_one_of_the_catalog_is_refused(api, merchant, media, catalog,
                                                                                    new):
    """Only Cyrillic and Greek look-alikes were known: an Armenian OU-1 or a Cherokee SA-1 became a second product."""
    ProductFactory(merchant=merchant, sku=catalog, title="Old")
    job, progress = upload(api, manifest=HEADER + row(new, "New"), policy="skip")
    assert progress["errors"] == [{"row": 2, "field": "sku", "reason": IN_CATALOG.replace(
        r"'\u0410-1'", ascii(new)).replace("'A-1'", repr(catalog))}]
    assert products(merchant) == [(catalog, "Old", True)]


def test_the_product_api_refuses_a_new_sku_that_looks_like_one_of_the_catalog(api, merchant):
    """Only an import compared a SKU wholly in Cyrillic with the catalog: the product API made a second A-1."""
    ProductFactory(merchant=merchant, sku="A-1", title="Old")
    cyrillic = ProductFactory(merchant=merchant, sku="\u0411-1", title="Be")  # looks like no Latin SKU
    response = api.post("/api/products/", new_product("\u0410-1"), format="json")
    assert (response.status_code, response.json()) == (400, {"sku": [IN_CATALOG]})
    response = api.patch(f"/api/products/{cyrillic.pk}/", {"sku": "\u0410-1"}, format="json")
    assert (response.status_code, response.json()) == (400, {"sku": [IN_CATALOG]})
    assert products(merchant) == [("A-1", "Old", True), ("\u0411-1", "Be", True)]
    # A product's own look-alike SKU, sent again with another field, stays: no second product is made.
    twin = ProductFactory(merchant=merchant, sku="\u0391-2", title="Twin")  # Greek A-2, made before this check
    ProductFactory(merchant=merchant, sku="A-2", title="Latin")
    response = api.patch(f"/api/products/{twin.pk}/", {"sku": "\u0391-2", "title": "Renamed"}, format="json")
    assert response.status_code == 200


def test_the_admin_refuses_a_new_sku_that_looks_like_one_of_the_catalog(staff_client, merchant):
    ProductFactory(merchant=merchant, sku="\u0410-1", title="Old")  # in Cyrillic letters, the Latin one is new
    response = staff_client.post("/admin/catalog/product/add/", admin_form(merchant, "A-1"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [
        r"sku 'A-1' looks the same as '\u0410-1', a SKU of your catalog, but is written in other characters: they "
        "would be two products no one can tell apart; to update that product, copy its SKU from your catalog; for "
        "another product, give a SKU that looks like no other"]}
    assert products(merchant) == [("\u0410-1", "Old", True)]


def test_a_new_latin_sku_that_looks_like_a_cyrillic_one_of_the_catalog_is_refused(api, merchant, media):
    ProductFactory(merchant=merchant, sku="\u0410-1", title="Old")
    job, progress = upload(api, manifest=HEADER + row("A-1", "New"), policy="skip")
    assert progress["errors"] == [{"row": 2, "field": "sku", "reason": (
        r"sku 'A-1' looks the same as '\u0410-1', a SKU of your catalog, but is written in other characters: they "
        "would be two products no one can tell apart; to update that product, copy its SKU from your catalog; for "
        "another product, give a SKU that looks like no other")}]
    assert products(merchant) == [("\u0410-1", "Old", True)]


def test_two_new_skus_of_the_file_that_look_the_same_are_both_refused(api, merchant, media):
    """Which one is meant is unknown, as for a SKU on two rows: both are rejected, each naming the other."""
    manifest = HEADER + row("A-1") + row("B-1") + row("\u0410-1") + row("\u0391-1")
    job, progress = upload(api, manifest=manifest, policy="skip")
    assert progress["errors"] == [
        {"row": 2, "field": "sku", "reason": in_file("'A-1'", (r"'\u0410-1'", "row 4"), (r"'\u0391-1'", "row 5"))},
        {"row": 4, "field": "sku", "reason": in_file(r"'\u0410-1'", ("'A-1'", "row 2"), (r"'\u0391-1'", "row 5"))},
        {"row": 5, "field": "sku", "reason": in_file(r"'\u0391-1'", ("'A-1'", "row 2"), (r"'\u0410-1'", "row 4"))}]
    assert products(merchant) == [("B-1", "Mug", True)]


def test_a_row_of_the_catalogs_sku_updates_it_and_its_look_alike_is_refused(api, merchant, media):
    """A-1 on row 3 is the catalog's A-1: named once, as the catalog's."""
    ProductFactory(merchant=merchant, sku="A-1", title="Old")
    job, progress = upload(api, manifest=HEADER + row("\u0410-1", "New") + row("A-1", "New"), policy="skip")
    assert (progress["rows_accepted"], progress["errors"]) == (1, [{"row": 2, "field": "sku", "reason": IN_CATALOG}])
    assert products(merchant) == [("A-1", "New", True)]


def test_a_sku_wholly_in_another_alphabet_that_looks_like_no_other_is_imported(api, merchant, media):
    ProductFactory(merchant=merchant, sku="B-1", title="Old")
    manifest = HEADER + row("\u0410-1") + row("\u0410\u0411\u0412-1") + row("\u0392-2")
    job, progress = upload(api, manifest=manifest)
    assert (progress["rows_accepted"], progress["errors"]) == (3, [])
    assert products(merchant) == [("B-1", "Old", True), ("\u0392-2", "Mug", True), ("\u0410-1", "Mug", True),
                                  ("\u0410\u0411\u0412-1", "Mug", True)]


def test_two_products_that_look_the_same_already_are_each_updated(api, merchant, media):
    """Added before this check: each row names its own product exactly, which adds none."""
    ProductFactory(merchant=merchant, sku="A-1", title="Old")
    ProductFactory(merchant=merchant, sku="\u0410-1", title="Old")
    job, progress = upload(api, manifest=HEADER + row("A-1", "New") + row("\u0410-1", "New"))
    assert (progress["rows_accepted"], progress["errors"]) == (2, [])
    assert products(merchant) == [("A-1", "New", True), ("\u0410-1", "New", True)]


def test_a_full_sync_spares_the_listed_sku_a_look_alike_row_names(api, merchant, media):
    """A-1 written in Cyrillic: rejected, and the merchant plainly named A-1, which stays listed; it was unlisted."""
    for sku in ("A-1", "B-1", "C-1", "D-1"):
        ProductFactory(merchant=merchant, sku=sku, title="Old")
    manifest = HEADER + row("\u0410-1", "New") + row("B-1", "New") + row("C-1", "New")
    job, progress = upload(api, manifest=manifest, policy="skip", full_sync="true", confirm_unlist="1")
    assert (progress["state"], progress["unlisted_skus"], progress["errors"]) == (
        "done", ["D-1"], [{"row": 2, "field": "sku", "reason": IN_CATALOG}])
    assert products(merchant) == [("A-1", "Old", True), ("B-1", "New", True), ("C-1", "New", True),
                                  ("D-1", "Old", False)]


def test_policy_reject_writes_nothing(api, merchant, media):
    ProductFactory(merchant=merchant, sku="A-1", title="Old")
    job, progress = upload(api, manifest=HEADER + row("B-1") + row("\u0410-1"), policy="reject")
    assert (progress["state"], progress["errors"]) == ("rejected", [{"row": 3, "field": "sku",
                                                                  "reason": IN_CATALOG}])
    assert products(merchant) == [("A-1", "Old", True)]


def test_a_shop_that_gives_all_its_skus_has_unlisted_products_compared_too(api, merchant, media, monkeypatch):
    """``catalog_skus(merchant)``, optional: without it the import sees the listed products (``listed_skus``)."""
    ProductFactory(merchant=merchant, sku="A-1", title="Old", listed=False)
    monkeypatch.setattr(ProductImportSerializer, "catalog_skus", classmethod(
        lambda cls, merchant: Product.objects.filter(merchant=merchant).values_list("sku", flat=True)), raising=False)
    job, progress = upload(api, manifest=HEADER + row("\u0410-1", "New"), policy="skip")
    assert progress["errors"] == [{"row": 2, "field": "sku", "reason": IN_CATALOG}]
    assert products(merchant) == [("A-1", "Old", False)]


def test_a_full_sync_spares_the_listed_look_alike_a_refused_latin_row_names(api, merchant, media):
    """The other way round: the catalog's listed A-1 is Cyrillic, the file's Latin A-1 is refused beside it, and the
    merchant plainly named that product, which stays listed (``unnamed`` reads the listed SKUs as seen too)."""
    for sku in ("\u0410-1", "B-1", "C-1", "D-1"):
        ProductFactory(merchant=merchant, sku=sku, title="Old")
    manifest = HEADER + row("A-1", "New") + row("B-1", "New") + row("C-1", "New")
    job, progress = upload(api, manifest=manifest, policy="skip", full_sync="true", confirm_unlist="1")
    assert (progress["state"], progress["unlisted_skus"], [error["row"] for error in progress["errors"]]) == (
        "done", ["D-1"], [2])
    assert progress["errors"][0]["reason"].startswith("sku 'A-1' looks the same as '\\u0410-1', a SKU of your catalog")
    assert products(merchant) == [("B-1", "New", True), ("C-1", "New", True), ("D-1", "Old", False),
                                  ("\u0410-1", "Old", True)]


# --- the upload check foresees them, in the import's words -----------------------------------------------------

FORESEEN = {
    # the catalog's A-1 written in Cyrillic, beside a plain new SKU
    "in the catalog": (HEADER + row("\u0410-1", "New") + row("B-1"), 1),
    # two new SKUs of the file that look like the catalog's A-1, which the file names too: both refused
    "in the file": (HEADER + row("A-1") + row("B-1") + row("\u0410-1") + row("\u0391-1"), 2),
    # a Latin SKU on two rows beside its Cyrillic look-alike: the duplicate's reason first, then the look-alike's
    "a duplicate that looks like another": (HEADER + row("C-1") + row("\u0421-1") + row("C-1") + row("B-1"), 1),
}


@pytest.mark.parametrize("manifest, products_left", FORESEEN.values(), ids=FORESEEN.keys())
def test_the_upload_check_foresees_a_look_alike_in_the_imports_words(client, api, merchant, media, manifest,
                                                                     products_left):
    """The check counted only what the file alone tells: a look-alike row passed it ("The file reads well: 2
    products"), and the import rejected it after every image was sent."""
    ProductFactory(merchant=merchant, sku="A-1", title="Old")
    client.force_login(merchant.user)
    status, answer = check(client, manifest)
    job, progress = upload(api, manifest=manifest, policy="skip")
    assert (status, answer["products"], answer["rows"]["errors"]) == (200, products_left, progress["errors"])
    assert answer["rows"]["rejected"] == progress["rows_rejected"] > 0


def test_the_upload_answer_of_the_api_foresees_a_look_alike_too(api, merchant, media):
    ProductFactory(merchant=merchant, sku="A-1", title="Old")
    manifest = named(HEADER + row("\u0410-1", "New") + row("B-1"), "catalog.csv")
    response = api.post("/api/imports/", {"manifest": manifest, "archive": zipped(IMAGES)}, format="multipart")
    assert (response.status_code, response.json()["check"]["products"], response.json()["check"]["rows"]) == (
        202, 1, {"rejected": 1, "errors": [{"row": 2, "field": "sku", "reason": IN_CATALOG}]})

"""A sixth round on the merchant pages and the admin: each test pins one problem that was found and fixed.

- The upload check said "The file reads well: N products (SKUs)" counting the SKUs of rows it listed as rejected
  beside it; it now counts the products the import will add or update, and the file's rows when they differ.
- The check counted a full sync against the merchant in the session, while the upload refuses (409) a form opened
  for another merchant; the check now honours the form's hidden ``merchant`` field the same way.
- A spreadsheet saves a long numeric SKU as it shows it, ``1.23457E+11``: the real SKU is lost. The check warns of
  SKUs that look so, naming the rows, and says how to avoid it.
- The admin's product form checked a duplicate SKU in clean(); one inserted by another writer between that check
  and the save was the unique constraint's IntegrityError, a 500. It is the form's error now.
"""

import re
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from p2w_search.models import ImportJob
from p2w_search.uploads import rows as upload_rows
from p2w_search.uploads.rows import ROWS_SHOWN, RejectedRows, check_manifest, known_columns
from shop_demo.catalog.admin import DUPLICATE_SKU_IN_ADMIN, ProductAdmin
from shop_demo.catalog.models import SAME_LOOKING_IN_ADMIN
from tests import test_invisible_keys as invisible_keys
from tests import test_key_forms as key_forms
from tests.browser.conftest import browser, chromium_executable, page  # noqa: F401 (fixtures)
from tests.factories import MerchantFactory, ProductFactory
from tests.hostile import HEADER, json_row, row
from tests.test_concurrent_writes import Writer
from tests.test_merchant_pages import files, run, text

CHECK, UPLOAD = "/merchant/upload/check/", "/merchant/upload/"
TAIL = "Each row's values are checked as it is imported; a row that fails comes back to fix."


def check(client, manifest, name="catalog.csv", **fields):
    response = client.post(CHECK, {"manifest": SimpleUploadedFile(name, manifest.encode()), **fields})
    return response.status_code, response.json()


def imported(client, manifest, name="catalog.csv"):
    """Upload ``manifest`` (with the images its rows name) through the page and run its import here."""
    before = set(ImportJob.objects.values_list("pk", flat=True))
    response = client.post(UPLOAD, files(manifest, name=name))
    assert response.status_code == 302, text(response)[:2000]
    return run(ImportJob.objects.exclude(pk__in=before).get())


# --- 1. the products the import writes, not the SKUs of rejected rows ---------------------------------------

def test_the_check_counts_the_products_the_import_adds_or_updates(acme, client, media):
    """Four rows: A-1 twice (both rejected), A<ZERO WIDTH SPACE>1 (rejected), B-1. It said "3 products (SKUs)"."""
    manifest = HEADER + row("A-1") + row("A\u200b1") + row("A-1") + row("B-1")
    client.force_login(acme.user)
    status, answer = check(client, manifest)
    assert (status, answer["products"], answer["rows"]["rejected"]) == (200, 1, 3)
    assert text(answer["html"]).startswith(
        f"The file reads well: 4 rows, 1 product (SKU) to add or update, every column known. {TAIL} "
        "The import will not take 3 rows of this file")
    job = imported(client, manifest)
    assert (job.rows_total, job.rows_accepted, job.rows_rejected) == (4, 1, 3)  # the check's numbers


def test_a_jsonl_file_is_counted_alike(acme, client, media):
    """``1.5`` and ``"1.5"`` are one SKU (two rejected rows); a row without a sku is rejected; K-1 and K-2 stay."""
    manifest = json_row(1.5) + json_row("K-1") + json_row("1.5") + json_row(None) + json_row("K-2")
    client.force_login(acme.user)
    status, answer = check(client, manifest, "catalog.jsonl")
    assert (status, answer["products"], answer["rows"]["rejected"]) == (200, 2, 3)
    assert text(answer["html"]).startswith(f"The file reads well: 5 rows, 2 products (SKUs) to add or update, every "
                                           f"column known. {TAIL}")
    assert imported(client, manifest, "catalog.jsonl").rows_accepted == 2


def test_a_file_whose_rows_are_all_rejected_does_not_read_well(acme, client, media):
    client.force_login(acme.user)
    status, answer = check(client, HEADER + row("A-1") + row("A-1"))
    assert (status, answer["errors"], answer["products"], answer["rows"]["rejected"]) == (200, {}, 0, 2)
    assert text(answer["html"]).startswith("The file reads, every column known, but the import will take none of its "
                                           "2 rows: The import will not take 2 rows of this file")


def test_a_file_without_rejected_rows_is_counted_as_before(acme, client, media):
    client.force_login(acme.user)
    status, answer = check(client, HEADER + row("A-1") + row("B-1") + row("C-1", price="cheap"))
    assert (status, answer["products"]) == (200, 3)  # a price is the import's to see
    assert text(answer["html"]) == f"The file reads well: 3 products (SKUs), every column known. {TAIL}"


def test_a_file_that_cannot_be_used_counts_no_products(acme, client, media):
    client.force_login(acme.user)
    status, answer = check(client, "sku,prize\nA,1\n")
    assert (status, answer["products"], answer["rows"]) == (400, None, None)


def test_the_products_are_counted_in_bounded_memory():
    """No set of rows: a number that goes up for a good row and down when a later row names its SKU again."""
    rejected = RejectedRows()
    check_manifest(SimpleUploadedFile("c.csv", (HEADER + "".join(row(f"S-{n % 50_000}") for n in range(60_000))
                                                 + row("T-1")).encode()), columns_known=known_columns(),
                   rejected=rejected)
    assert (rejected.rows, rejected.count, rejected.products) == (60_001, 20_000, 40_001)


# --- 2. the check honours the form's merchant, as the upload does ------------------------------------------

SWITCHED = ("This form was opened for another merchant than the one you act for now, Rival (chosen on another page). "
            "The file was not checked: check whom you act for, above, and open the upload page again.")


def test_a_check_from_a_form_opened_for_another_merchant_is_a_409(acme, rival, staff, client, media):
    """Acme's upload page, Rival chosen in another tab: the check counted Acme's full sync against Rival's products."""
    ProductFactory(merchant=rival, sku="R-1")
    client.force_login(staff)
    client.post("/merchant/act-for/", {"merchant": acme.pk})
    form = client.get(UPLOAD).content.decode()
    opened_for = re.search(r'<input type="hidden" name="merchant" value="([^"]*)">', form).group(1)
    assert opened_for == str(acme.pk)
    client.post("/merchant/act-for/", {"merchant": rival.pk})  # another tab
    status, answer = check(client, HEADER + row("A-1"), full_sync="true", merchant=opened_for)
    assert (status, answer["errors"], answer["full_sync"], answer["rows"], answer["products"]) == (
        409, {"__all__": [SWITCHED]}, None, None, None)
    assert text(answer["html"]) == SWITCHED and 'data-check="errors"' in answer["html"]
    # Sent twice, once for each: which was meant is unknown, and the form was not opened for Rival alone.
    response = client.post(CHECK, {"manifest": SimpleUploadedFile("c.csv", (HEADER + row("A-1")).encode()),
                                   "merchant": [str(rival.pk), opened_for]})
    assert (response.status_code, response.json()["errors"]) == (409, {"__all__": [SWITCHED]})
    # For the merchant acted for, and without the field (a script), the check counts as before.
    for extra in ({"merchant": str(rival.pk)}, {}):
        status, answer = check(client, HEADER + row("A-1"), full_sync="true", confirm_unlist="1", **extra)
        assert (status, answer["full_sync"]["unlist"], answer["full_sync"]["skus"]) == (200, 1, ["R-1"])
    assert not ImportJob.objects.exists()


def test_the_refusal_comes_before_the_limit_on_waiting_uploads(acme, rival, staff, client, media, settings):
    """As on the upload: the form is not read at all, whatever else would refuse it."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_MAX_WAITING": 1}
    client.force_login(staff)
    client.post("/merchant/act-for/", {"merchant": rival.pk})
    assert client.post(UPLOAD, files(HEADER + row("R-1"))).status_code == 302  # Rival's one place, taken
    assert check(client, HEADER + row("A-1"), merchant=str(rival.pk))[0] == 429
    status, answer = check(client, HEADER + row("A-1"), merchant=str(acme.pk))
    assert (status, answer["errors"]) == (409, {"__all__": [SWITCHED]})


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_page_sends_the_merchant_it_was_opened_for_with_the_check(live_server, page, tmp_path,  # noqa: F811
                                                                       django_user_model):
    django_user_model.objects.create_user("boss", password="boss-pass-1", is_staff=True, is_superuser=True)
    MerchantFactory(name="Acme", slug="acme")
    rival = MerchantFactory(name="Rival", slug="rival")
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(HEADER + row("A-1"))
    page.goto(f"{live_server.url}/merchant/login/?next=/merchant/act-for/")
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill("boss-pass-1")
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Merchant", exact=True).select_option(label="Acme")
    page.get_by_role("button", name="Act for this merchant").click()
    page.goto(f"{live_server.url}/merchant/upload/")
    # Another tab of the same session chooses Rival: its form, sent with this browser's cookies. (A second
    # page of the context did the same, but closing it once hung the headless browser past the test timeout.)
    token = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    switched = page.context.request.post(f"{live_server.url}/merchant/act-for/", max_redirects=0,
                                         form={"merchant": str(rival.pk), "csrfmiddlewaretoken": token})
    assert switched.status == 302
    page.get_by_label("Catalog file").set_input_files(str(manifest))
    expect(page.locator("#full-sync-count")).to_have_text(SWITCHED)
    expect(page.get_by_label("Catalog file")).to_have_attribute("aria-invalid", "true")


# --- 3. SKUs a spreadsheet wrote in scientific notation ----------------------------------------------------

SCIENTIFIC = ["1.23457E+11", "1,23457E+11", "4.5E+12", "-1.2E+11", "1.2E-05", "9E+20", "1.23457e+11"]
NOT_SCIENTIFIC = ["123456789012", "12E5", "1.2E5", "E+11", "1.2.3E+11", "A1.2E+11", "1.2E+11B", "12.5E+11", "0E+00",
                  "SKU-1E+05", "1.2E+", "1.2 E+11"]


@pytest.mark.parametrize("sku", SCIENTIFIC)
def test_a_number_in_scientific_notation_looks_so(sku):
    assert upload_rows.looks_scientific(sku) is True


@pytest.mark.parametrize("sku", NOT_SCIENTIFIC + [None, 1.5])
def test_other_skus_do_not(sku):
    assert upload_rows.looks_scientific(sku) is False


def warning(count, shown, more=""):
    return (f"The SKU of {count} row{'s' if count > 1 else ''} looks like a number a spreadsheet wrote in scientific "
            f"notation: {shown}{more}. A spreadsheet shows a long number such as 123456789012 as 1.23457E+11 and "
            "saves it so: the real SKU is lost, the import adds a product of that name, and a full sync unlists the "
            "real one. If these are not your SKUs, format the SKU column as text in your spreadsheet (or import the "
            "file with that column as text), correct the SKUs and save the file again.")


def test_the_check_warns_of_such_skus_naming_the_rows(acme, client, media):
    manifest = (HEADER + row("1.23457E+11") + row("OK-1") + row('"1,23457E+11"') + row("4.5E+12") + row("12E5")
                + row("1.2E-05") + row("9E+20") + row("-1.2E+11"))
    client.force_login(acme.user)
    status, answer = check(client, manifest)
    assert (status, answer["errors"], answer["rows"]["rejected"]) == (200, {}, 0)  # a warning: such a SKU may be real
    assert answer["scientific"] == {"count": 6, "skus": [
        {"row": 2, "sku": "1.23457E+11"}, {"row": 4, "sku": "1,23457E+11"}, {"row": 5, "sku": "4.5E+12"},
        {"row": 7, "sku": "1.2E-05"}, {"row": 8, "sku": "9E+20"}]}
    assert text(answer["html"]) == (
        f"The file reads well: 8 products (SKUs), every column known. {TAIL} " + warning(
            6, "row 2 (1.23457E+11), row 4 (1,23457E+11), row 5 (4.5E+12), row 7 (1.2E-05), row 8 (9E+20)",
            " and 1 more row"))
    assert 'data-check="scientific"' in answer["html"]
    assert imported(client, manifest).rows_accepted == 8  # the import takes them as written


def test_two_real_skus_written_alike_are_both_a_duplicate_and_a_warning(acme, client, media):
    """123456789012 and 123457000000 both show as 1.23457E+11: two rejected rows, and the reason why."""
    ProductFactory(merchant=acme, sku="123456789012")
    ProductFactory(merchant=acme, sku="123457000000")
    manifest = HEADER + row("1.23457E+11") + row("1.23457E+11")
    client.force_login(acme.user)
    status, answer = check(client, manifest, full_sync="true")
    assert (status, answer["rows"]["rejected"], answer["scientific"]["count"]) == (200, 2, 2)
    assert answer["full_sync"]["unlist"] == 2
    shown = text(answer["html"])
    assert "A full sync of this file unlists 2 of your 2 listed products: 123456789012, 123457000000." in shown
    assert warning(2, "row 2 (1.23457E+11), row 3 (1.23457E+11)") in shown


def test_a_file_without_such_skus_has_no_warning(acme, client, media):
    client.force_login(acme.user)
    status, answer = check(client, HEADER + "".join(row(sku) for sku in NOT_SCIENTIFIC[:9]))
    assert (status, answer["scientific"]) == (200, {"count": 0, "skus": []})
    assert "scientific" not in answer["html"]


def test_a_file_that_cannot_be_used_has_no_warning(acme, client, media):
    client.force_login(acme.user)
    status, answer = check(client, "sku,prize\n1.2E+11,1\n")
    assert (status, answer["scientific"]) == (400, None)
    assert "scientific" not in answer["html"]


def test_such_skus_are_counted_in_bounded_memory():
    """100,000 of them: all counted, the first five kept, and no more memory than the check of distinct SKUs."""
    def peak(rows, rejected):
        upload = SimpleUploadedFile("c.csv", (HEADER + "".join(rows)).encode())
        tracemalloc.start()
        try:
            check_manifest(upload, columns_known=known_columns(), skus=set(), rejected=rejected)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    baseline = peak((row(f"{n:012}") for n in range(100_000)), RejectedRows())
    rejected = RejectedRows()
    with_warnings = peak((row(f"{1 + n % 9}.{n:06}E+11") for n in range(100_000)), rejected)
    assert (rejected.scientific, len(rejected.scientific_skus)) == (100_000, ROWS_SHOWN)
    assert rejected.scientific_skus[:2] == [{"row": 2, "sku": "1.000000E+11"}, {"row": 3, "sku": "2.000001E+11"}]
    assert with_warnings < baseline + 1024 * 1024, (with_warnings, baseline)


# --- 4. the admin: a SKU another writer inserts between the form's check and its save ---------------------

merchant = key_forms.merchant  # a fixture: the merchant acme
admin_form, products = invisible_keys.admin_form, key_forms.skus


# A fixture: a staff member's client who may add, change and view products.
staff_client = invisible_keys.staff


@pytest.fixture
def meanwhile(monkeypatch):
    """``meanwhile(sku, merchant)``: another writer commits a product of ``sku`` once the admin's form is valid, before
    it is saved (on a thread of its own: a connection and a transaction of its own)."""
    def insert(sku, merchant, *, writer=Writer):
        save_form, inserted = ProductAdmin.save_form, []

        def save_form_after_another_writer(self, request, form, change):
            if not inserted:
                inserted.append(writer(lambda: ProductFactory(merchant=merchant, sku=sku, title="Theirs")).result())
            return save_form(self, request, form, change)

        monkeypatch.setattr(ProductAdmin, "save_form", save_form_after_another_writer)
        return inserted

    return insert


@pytest.mark.django_db(transaction=True)
def test_the_add_form_answers_a_sku_taken_meanwhile_on_the_field(staff_client, merchant, meanwhile):
    inserted = meanwhile("A1", merchant)
    response = staff_client.post("/admin/catalog/product/add/", admin_form(merchant, "A1"))
    assert inserted and response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [DUPLICATE_SKU_IN_ADMIN]}
    assert text(response).count("This merchant already has a product with this SKU") == 1
    assert products(merchant) == [("A1", "Theirs", True)]


@pytest.mark.django_db(transaction=True)
def test_the_change_form_answers_it_alike_and_changes_nothing(staff_client, merchant, meanwhile):
    second = ProductFactory(merchant=merchant, sku="B1", title="Second")
    inserted = meanwhile("A1", merchant)
    response = staff_client.post(f"/admin/catalog/product/{second.pk}/change/", {
        **admin_form(merchant, "A1"), "title": "Renamed"})
    assert inserted and response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [DUPLICATE_SKU_IN_ADMIN]}
    assert products(merchant) == [("A1", "Theirs", True), ("B1", "Second", True)]


@pytest.mark.django_db(transaction=True)
def test_a_sku_that_reads_the_same_taken_meanwhile_is_answered_as_without_the_race(staff_client, merchant, meanwhile):
    """The NFC constraint's words, above the form, as when the other product was there before the check."""
    inserted = meanwhile(key_forms.CAFE, merchant)
    response = staff_client.post("/admin/catalog/product/add/", admin_form(merchant, key_forms.CAFE_NFD))
    assert inserted and response.status_code == 200
    assert response.context["adminform"].form.errors == {"__all__": [SAME_LOOKING_IN_ADMIN]}
    assert products(merchant) == [(key_forms.CAFE, "Theirs", True)]


@pytest.mark.django_db(transaction=True)
def test_without_a_race_the_form_saves(staff_client, merchant, meanwhile):
    inserted = meanwhile("OTHER-1", merchant)
    response = staff_client.post("/admin/catalog/product/add/", admin_form(merchant, "A1"))
    assert inserted and response.status_code == 302
    assert products(merchant) == [("A1", "t", True), ("OTHER-1", "Theirs", True)]


class InTheSameTransaction:
    """A "writer" that inserts in the admin's own transaction: rolled back with it, so the form shown again does not
    find the product by itself."""

    def __init__(self, work):
        self.value = work()

    def result(self):
        return self.value


@pytest.mark.django_db(transaction=True)
def test_the_form_shown_again_is_not_saved_even_when_it_finds_no_product(staff_client, merchant, meanwhile):
    inserted = meanwhile("A1", merchant, writer=InTheSameTransaction)
    response = staff_client.post("/admin/catalog/product/add/", admin_form(merchant, "A1"))
    assert inserted and response.status_code == 200
    assert response.context["adminform"].form.errors == {"sku": [DUPLICATE_SKU_IN_ADMIN]}
    assert products(merchant) == []

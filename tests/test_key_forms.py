"""SKUs that read the same are one product: ``café`` composed (NFC) and decomposed (NFD, as macOS tools write it).

The product API refused a SKU that reads as one the merchant has; a catalog upload compared SKUs
code point by code point, so a manifest from a tool that writes NFD made a second ``café`` that no
one could tell from the first, and its full sync unlisted the first. Each test is one upload (or
write) with the exact products and errors it must leave.
"""

import unicodedata

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction

from p2w_search.models import ImportJob
from p2w_search.uploads import importer
from shop_demo.catalog.imports import ProductImportSerializer
from shop_demo.catalog.models import Product, ProductQuerySet
from shop_demo.catalog.serializers import ProductSerializer
from tests.factories import MerchantFactory, ProductFactory, token_client
from tests.test_imports import HEADER, IMAGES, upload
from tests.test_migrate import fresh_database, manage, sql, url

CAFE = "caf\u00e9"  # composed: é is one code point
CAFE_NFD = unicodedata.normalize("NFD", CAFE)  # e and a combining acute accent: reads the same
TEA, TEA_NFD = "th\u00e9", unicodedata.normalize("NFD", "th\u00e9")


def row(sku, title="Mug", price="5.00"):
    return f"{sku},{title},,mug,{price},EUR,true,red.png\n"


def red():
    return SimpleUploadedFile("red.png", IMAGES["red.png"])


def skus(merchant):
    return sorted(Product.objects.filter(merchant=merchant).values_list("sku", "title", "listed"))


@pytest.fixture
def merchant(db, django_user_model):
    return MerchantFactory(slug="acme", user=django_user_model.objects.create_user("acme", password="pw"))


@pytest.fixture
def api(merchant):
    return token_client(merchant.user)


def test_two_rows_of_one_sku_in_two_unicode_forms_are_both_rejected_naming_the_rows(api, merchant, media):
    manifest = HEADER + row(CAFE, "Composed") + row("MUG-1") + row(CAFE_NFD, "Decomposed")
    job, progress = upload(api, manifest=manifest, policy="skip")
    reason = (f"sku {CAFE!r} is on rows 2, 4, written in other Unicode code points on some of them (they read the "
              "same); give each product once")
    assert (progress["rows_accepted"], progress["errors"]) == (1, [
        {"row": 2, "field": "sku", "reason": reason}, {"row": 4, "field": "sku", "reason": reason}])
    assert skus(merchant) == [("MUG-1", "Mug", True)]


def test_two_rows_of_one_sku_written_alike_keep_their_words(api, merchant, media):
    job, progress = upload(api, manifest=HEADER + row(CAFE_NFD) + row(CAFE_NFD), policy="skip")
    reason = f"sku {CAFE_NFD!r} is on rows 2, 3; give each product once"
    assert progress["errors"] == [{"row": 2, "field": "sku", "reason": reason},
                                  {"row": 3, "field": "sku", "reason": reason}]
    assert skus(merchant) == []


@pytest.mark.parametrize("stored, sent", [(CAFE, CAFE_NFD), (CAFE_NFD, CAFE)])
def test_an_upload_of_a_sku_in_another_form_updates_the_product_the_merchant_has(api, merchant, media, stored,
                                                                                  sent):
    """It made a second product; the one the merchant has is updated, and keeps its SKU as first written."""
    product = ProductFactory(merchant=merchant, sku=stored, title="Old", listed=False)
    job, progress = upload(api, manifest=HEADER + row(sent, "New", "8.00"))
    assert (progress["state"], progress["rows_accepted"], progress["errors"]) == ("done", 1, [])
    assert list(Product.objects.filter(merchant=merchant).values_list("pk", "sku", "title", "price", "listed")) == [
        (product.pk, stored, "New", 8, True)]


def test_a_json_lines_upload_matches_the_same_way(api, merchant, media):
    product = ProductFactory(merchant=merchant, sku=CAFE, title="Old")
    manifest = ('{"sku": "%s", "title": "New", "category": "mug", "price": "8", "images": ["red.png"]}\n'
                % CAFE_NFD.replace("\u0301", "\\u0301"))
    job, progress = upload(api, manifest=manifest, name="catalog.jsonl")
    assert progress["rows_accepted"] == 1
    assert list(Product.objects.filter(merchant=merchant).values_list("pk", "sku", "title")) == [
        (product.pk, CAFE, "New")]


def test_a_full_sync_from_a_tool_that_writes_nfd_spares_the_products_it_names(api, merchant, media):
    """It unlisted café and thé (the file did not name them code point by code point) and added two more."""
    for sku in (CAFE, TEA, "MUG-1", "MUG-2", "MUG-3"):
        ProductFactory(merchant=merchant, sku=sku, title="Old")
    manifest = HEADER + row(CAFE_NFD, "New") + row(TEA_NFD, "New") + row("MUG-1", "New") + row("MUG-2", "New")
    job, progress = upload(api, manifest=manifest, full_sync="true")
    assert (progress["state"], progress["message"]) == (
        "done", "4 rows imported, 4 images queued for embedding, 1 product unlisted")
    assert progress["unlisted_skus"] == ["MUG-3"]
    assert skus(merchant) == [("MUG-1", "New", True), ("MUG-2", "New", True), ("MUG-3", "Old", False),
                              (CAFE, "New", True), (TEA, "New", True)]


def test_a_full_sync_counts_in_what_a_waiting_upload_names_in_another_form(api, merchant, media):
    """An upload sent first relists café (sent NFD); a full sync sent after it, without café, unlists it: the
    merchant counts café in. Its NFD form was compared with the stored NFC one: café was spared, and the first
    upload had made a second café. thé, stored NFD and listed, is compared in NFC the same way."""
    ProductFactory(merchant=merchant, sku="MUG-1")
    ProductFactory(merchant=merchant, sku=TEA_NFD)
    cafe = ProductFactory(merchant=merchant, sku=CAFE, listed=False)
    first = api.post("/api/imports/", {"manifest": SimpleUploadedFile("a.csv", (HEADER + row(CAFE_NFD)).encode()),
                                       "images": [red()]}, format="multipart")
    second = api.post("/api/imports/", {"manifest": SimpleUploadedFile("b.csv", (HEADER + row("MUG-1")).encode()),
                                        "images": [red()], "full_sync": "true", "confirm_unlist": "2"},
                      format="multipart")
    assert (first.status_code, second.status_code) == (202, 202), second.content
    importer.run_import(ImportJob.objects.get(pk=first.json()["id"]))
    assert (Product.objects.get(pk=cafe.pk).listed, Product.objects.filter(merchant=merchant).count()) == (True, 3)
    job = importer.run_import(ImportJob.objects.get(pk=second.json()["id"]))
    assert (job.state, job.products_unlisted, sorted(job.unlisted_skus)) == ("done", 2, sorted([CAFE, TEA_NFD]))
    assert list(Product.objects.filter(merchant=merchant, listed=True).values_list("sku", flat=True)) == ["MUG-1"]
    assert Product.objects.filter(merchant=merchant).count() == 3


def test_the_upload_check_counts_a_sku_in_two_forms_once_and_spares_it_in_a_full_sync(merchant, client):
    """The check counted café composed and decomposed as two products, and a full sync of a file that wrote a
    listed café decomposed as unlisting it (the import does neither)."""
    ProductFactory(merchant=merchant, sku=CAFE)
    ProductFactory(merchant=merchant, sku=TEA_NFD)
    ProductFactory(merchant=merchant, sku="MUG-1")
    client.force_login(merchant.user)

    def check(manifest, **fields):
        answer = client.post("/merchant/upload/check/", {"manifest": SimpleUploadedFile("c.csv", manifest.encode()),
                                                         **fields})
        return answer.status_code, answer.json()

    status, answer = check(HEADER + row(CAFE_NFD) + row(TEA) + row("MUG-1"), full_sync="true")
    assert (status, answer["errors"], answer["full_sync"]) == (
        200, {}, {"unlist": 0, "listed": 3, "skus": [], "refusal": None, "accepts_no_row": False})
    status, answer = check(HEADER + row(CAFE_NFD) + row(CAFE) + row("MUG-1"))
    # The two cafés are one SKU on two rows, both rejected (tests/test_merchant_round_6.py): MUG-1 is imported.
    assert status == 200 and "The file reads well: 3 rows, 1 product (SKU) to add or update, every column known." in (
        answer["html"])


def test_the_database_refuses_a_second_product_whose_sku_reads_the_same(merchant):
    ProductFactory(merchant=merchant, sku=CAFE)
    ProductFactory(merchant=MerchantFactory(slug="rival"), sku=CAFE_NFD)  # another merchant's: no matter
    with pytest.raises(IntegrityError, match="catalog_unique_merchant_sku_nfc"), transaction.atomic():
        ProductFactory(merchant=merchant, sku=CAFE_NFD)
    assert list(Product.objects.filter(merchant=merchant).values_list("sku", flat=True)) == [CAFE]


def test_an_import_that_meets_a_same_looking_sku_added_meanwhile_updates_it(merchant, monkeypatch):
    """The API adds café between the import's read and its INSERT (here: the read misses it): the constraint
    refuses the INSERT, and the import reads again and updates the product the API added, as for a SKU written
    alike. Without the constraint, the import added a second café."""
    by_the_api = ProductFactory(merchant=merchant, sku=CAFE, title="By the API")
    real, reads = ProductQuerySet.reading_as, []

    def late(queryset, skus):
        reads.append(list(skus))
        return real(queryset, skus) if len(reads) > 1 else queryset.none()

    monkeypatch.setattr(ProductQuerySet, "reading_as", late)
    products = ProductImportSerializer.save_rows(merchant, [
        {"sku": CAFE_NFD, "title": "Imported", "category": "mug", "price": 5, "images": ["red.png"]}])
    assert (reads, [product.pk for product in products]) == ([[CAFE_NFD], [CAFE_NFD]], [by_the_api.pk])
    assert list(Product.objects.filter(merchant=merchant).values_list("sku", "title")) == [(CAFE, "Imported")]


def test_an_api_write_that_meets_a_same_looking_sku_added_meanwhile_is_a_400(merchant, monkeypatch):
    """Past the check (another request added café meanwhile), the constraint's refusal is a 400, not a 500."""
    ProductFactory(merchant=merchant, sku=CAFE)
    monkeypatch.setattr(ProductSerializer, "validate_sku", lambda self, sku: sku)
    response = token_client(merchant.user).post("/api/products/", {
        "sku": CAFE_NFD, "title": "t", "category": "mug", "price": "1"}, format="json")
    assert (response.status_code, response.json()) == (400, {"sku": [
        "You already have a product with a sku that reads the same, written in other Unicode code points; give that "
        "one, or another sku."]})
    assert list(Product.objects.filter(merchant=merchant).values_list("sku", flat=True)) == [CAFE]


def test_the_admin_refuses_a_same_looking_sku_by_name(merchant, client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=["add_product", "change_product",
                                                                        "view_product"]))
    ProductFactory(merchant=merchant, sku=CAFE)
    client.force_login(staff)
    response = client.post("/admin/catalog/product/add/", {
        "merchant": merchant.pk, "sku": CAFE_NFD, "title": "t", "category": "mug", "price": "1", "currency": "EUR",
        "in_stock": "on", "listed": "on", "p2w_images-TOTAL_FORMS": "0", "p2w_images-INITIAL_FORMS": "0"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"__all__": [
        "This merchant has a product whose SKU reads the same (the same letters, maybe written in other Unicode "
        "code points); give that one, or another SKU."]}
    assert list(Product.objects.filter(merchant=merchant).values_list("sku", flat=True)) == [CAFE]


def test_the_import_finds_existing_products_through_the_nfc_index(merchant):
    """A merchant of 5000 products: the import's read of a chunk's products goes through the (merchant, NFC of the
    SKU) index, not through all the merchant's products (on a tiny table the planner's choice would be noise)."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO catalog_product (merchant_id, sku, title, description, category, price, currency, "
                       "in_stock, listed, created_at) SELECT %s, 'SKU-' || n, 't', '', 'mug', 1, 'EUR', true, true, "
                       "now() FROM generate_series(1, 5000) n", [merchant.pk])
        cursor.execute("ANALYZE catalog_product")
    plan = Product.objects.filter(merchant=merchant).reading_as([CAFE_NFD, "SKU-7"]).explain()
    assert "catalog_unique_merchant_sku_nfc" in plan and "Seq Scan" not in plan, plan


def test_the_migration_refuses_a_database_that_holds_same_looking_skus_naming_them():
    """An existing shop's database may hold café twice: the constraint is not added, nothing is merged, and the
    error names the merchant and both SKUs (as escapes, since they read the same)."""
    with fresh_database() as name:
        status, output = manage("migrate", "catalog", "0001", "--noinput", database_url=url(name))
        assert status == 0, output
        sql("INSERT INTO catalog_merchant (name, slug) VALUES ('Acme', 'acme')", database=name)
        for sku in (CAFE, CAFE_NFD, "MUG-1"):
            sql("INSERT INTO catalog_product (merchant_id, sku, title, description, category, price, currency, "
                f"in_stock, listed, created_at) SELECT id, '{sku}', 't', '', 'mug', 1, 'EUR', true, true, now() "
                "FROM catalog_merchant", database=name)
        status, output = manage("migrate", "--noinput", database_url=url(name))
        assert status != 0
        assert ("Some merchants have products whose SKUs read the same, written in other Unicode code points: "
                "merchant 'acme': 'caf\\xe9', 'cafe\\u0301'. Give each of them a SKU of its own (the admin, the "
                "product API), then migrate again.") in output, output
        assert sql("SELECT count(*) FROM catalog_product", database=name) == [(3,)]


@pytest.mark.parametrize("second", [CAFE, CAFE_NFD])
def test_rows_that_read_the_same_handed_to_save_rows_at_once_raise_and_write_nothing(merchant, second):
    """The import never hands them (a SKU on two rows rejects both); a caller that did had them tried again forever:
    each INSERT refused, each read again finding nothing."""
    rows = [{"sku": sku, "title": "t", "category": "mug", "price": 5, "images": ["red.png"]} for sku in (CAFE, second)]
    with pytest.raises(IntegrityError, match="catalog_unique_merchant_sku"), transaction.atomic():
        ProductImportSerializer.save_rows(merchant, rows)
    assert not Product.objects.filter(merchant=merchant).exists()

"""Stored injection: a merchant's (or a shopper's) text is shown as text wherever it is shown.

Titles, descriptions, categories, SKUs, currencies, merchant names, file names and manifest cells
reach shoppers (the storefront, "like this, but ..."), the merchant (its pages and merchant.js)
and staff (the admin, the index page, its SVG charts). Each is rendered here through the real
views with hostile values and the exact escaped output asserted; downloads are attachments
whose name cannot break the header; the rejected-rows file keeps a formula from running in a
spreadsheet and, corrected, imports what was sent.
"""

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.models import ImageEmbedding, ImportJob
from p2w_search.svg_charts import line_chart
from p2w_search.uploads import importer
from p2w_search.uploads.manifest import read_manifest
from shop_demo.catalog.models import Product
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory, embed_catalog, png
from tests.hostile import RED, zip_bytes

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
CLOSE = "</script><script>alert(2)</script>"
SVG = "<svg onload=alert(1)>"
JS_URL = "javascript:alert(1)"
TEMPLATE = "{{7*7}}"
FORMULA = '=HYPERLINK("http://x","click")'
COLUMNS = ["sku", "title", "description", "category", "price", "currency", "in_stock", "images"]
STATIC = Path(__file__).resolve().parent.parent / "p2w_search" / "static" / "p2w_search"


def assert_escaped(page, *values):
    """Each of ``values`` is in ``page`` escaped, and nowhere as it was written."""
    for value in values:
        assert escape(value) in page, value
        assert value not in page, value


def body(response):
    return response.content.decode()


def manifest(rows):
    """A CSV manifest (a spreadsheet's export) of ``rows``, each a dict of some COLUMNS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for values in rows:
        writer.writerow([values.get(name, default) for name, default in
                         zip(COLUMNS, ["", "Tee", "", "t-shirt", "9.50", "EUR", "true", "red.png"])])
    return buffer.getvalue()


def upload(client, text, images=(("red.png", RED),)):
    """Upload ``text`` from the merchant page and run its import here, as a worker would; return the job."""
    before = set(ImportJob.objects.values_list("pk", flat=True))
    files = {"manifest": ContentFile(text.encode(), name="catalog.csv"),
             "archive": ContentFile(zip_bytes(list(images)), name="images.zip")}
    response = client.post("/merchant/upload/", files)
    assert response.status_code == 302, body(response)[:2000]
    job = ImportJob.objects.exclude(pk__in=before).get()
    importer.run_import(job)
    return ImportJob.objects.get(pk=job.pk)


@pytest.fixture
def hostile(db, media):
    """A product of a hostile merchant, every text of it hostile, with an image; and one titled like a URL."""
    merchant = MerchantFactory(name=SCRIPT, slug="hostile")
    product = ProductFactory(merchant=merchant, sku=TEMPLATE, title=IMG, description=CLOSE, category=SVG,
                             currency="<b>")
    ProductImageFactory(product=product)
    other = ProductFactory(merchant=merchant, title=JS_URL, category=SVG)
    ProductImageFactory(product=other, data=png((20, 20, 220)))
    return product, other


# --- shoppers ------------------------------------------------------------------------------------------

def test_the_product_page_shows_a_merchants_text_as_text(client, hostile):
    product, _ = hostile
    page = body(client.get(f"/product/{product.pk}/"))
    assert_escaped(page, IMG, CLOSE, SCRIPT, SVG)
    assert f"<title>{escape(IMG)} · p2w shop</title>" in page
    assert f'<img class="product__image" src="{product.p2w_images.get().file.url}" alt="{escape(IMG)}">' in page
    assert f'<h1 class="product__title">{escape(IMG)}</h1>' in page
    assert f'<p class="product__desc">{escape(CLOSE)}</p>' in page
    assert '<p class="product__price">19.99 &lt;b&gt;</p>' in page  # a currency of three characters
    assert f"SKU {TEMPLATE} · sold by {escape(SCRIPT)}" in page  # a template's syntax is text too
    assert '?category=%3Csvg%20onload%3Dalert%281%29%3E">&lt;svg onload=alert(1)&gt;</a>' in page


def test_the_shops_grid_and_filters_show_a_merchants_text_as_text(client, hostile):
    page = body(client.get("/"))
    assert_escaped(page, IMG, SVG)
    assert f'<h2 class="card__title">{escape(IMG)}</h2>' in page  # right under the page's h1
    assert f'<span class="eyebrow">{escape(SVG)}</span>' in page
    assert f'<option value="{escape(SVG)}">' in page
    assert f'<h2 class="card__title">{JS_URL}</h2>' in page and 'href="javascript:' not in page


def test_like_this_but_shows_the_shoppers_change_and_the_results_as_text(client, hostile):
    product, other = hostile
    embed_catalog()
    response = client.get(f"/product/{product.pk}/", {"change": IMG})
    assert response.status_code == 200
    page = body(response)
    assert_escaped(page, IMG, SVG)
    assert f"Like this, but “{escape(IMG)}”</h2>" in page
    assert f'<input type="text" name="change" id="p2w-change-{product.pk}" value="{escape(IMG)}"' in page
    assert f'data-product-id="{other.pk}"' in page and 'href="javascript:' not in page

    words = body(client.get("/", {"q": CLOSE}))
    assert_escaped(words, CLOSE)
    assert f"<h1>Results for “{escape(CLOSE)}”</h1>" in words
    assert f'<input type="search" name="q" value="{escape(CLOSE)}"' in words


def test_the_browsable_api_shows_a_merchants_text_as_text(client, hostile):
    product, _ = hostile
    tag = "<img src=x onerror=alert(1)>"  # IMG as JSON writes it: its quote is escaped by a backslash
    for url in ("/api/products/", f"/api/products/{product.pk}/"):
        page = body(client.get(url, HTTP_ACCEPT="text/html"))
        assert_escaped(page, tag, CLOSE, SVG)
        assert 'href="javascript:' not in page, url


def test_the_apps_own_cards_show_the_product_as_text(hostile):
    product, _ = hostile
    image = product.p2w_images.get()
    card = type("Card", (), {"product": product, "image": image, "score": 0.5})
    page = render_to_string("p2w_search/like_this/cards.html", {"cards": [card], "name": "changed"})
    shown = escape(f"{TEMPLATE} {IMG}")  # the product's str: its SKU and title
    assert f'<img src="{image.url}" alt="{shown}" loading="lazy">' in page
    assert f'<span class="p2w-card__title">{shown}</span>' in page and IMG not in page


def test_the_scripts_insert_text_as_text_and_only_the_servers_html_as_html():
    """like_this.js writes no HTML at all; merchant.js puts in place only what the server rendered (escaped,
    as the merchant tests below show), never a value it read from the page or the JSON's data."""
    like_this = (STATIC / "like_this.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|Function\(", like_this)
    assert "status.textContent = text;" in like_this
    merchant = (STATIC / "merchant.js").read_text()
    assert not re.search(r"outerHTML|insertAdjacentHTML|document\.write|eval\(|Function\(", merchant)
    assert re.findall(r"\.innerHTML\s*=\s*([^;]+);", merchant) == ["html", '""', "answer.html.trim()"]
    assert "var html = parts[name].trim();" in merchant


# --- the merchant --------------------------------------------------------------------------------------

def test_the_merchant_pages_show_rows_reasons_and_names_as_text(acme, client, media):
    client.force_login(acme.user)
    missing = f"{IMG}.png"
    job = upload(client, manifest([
        {"sku": "A-1", "title": IMG, "description": CLOSE, "category": SVG},
        {"sku": "A-2", "title": SCRIPT, "images": missing},
    ]))
    assert (job.rows_accepted, job.rows_rejected) == (1, 1)
    reason = f"missing image {missing!r}"
    page = body(client.get(f"/merchant/imports/{job.pk}/"))
    assert_escaped(page, reason)
    assert f'<td data-label="Column">images</td><td data-label="Reason">{escape(reason)}</td>' in page
    parts = client.get(f"/merchant/imports/{job.pk}/progress/").json()["parts"]  # what merchant.js puts in place
    assert escape(reason) in parts["result"] and reason not in parts["result"]

    image = Product.objects.get(sku="A-1").p2w_images.get()
    indexing.register_model()
    indexing.queue_images([image])
    ImageEmbedding.objects.filter(image=image).update(state=ImageEmbedding.State.FAILED, error=SCRIPT)
    home = body(client.get("/merchant/"))
    assert f"<li><strong>A-1 {escape(IMG)}</strong>: {escape(SCRIPT)}</li>" in home
    assert_escaped(home, IMG, SCRIPT)


def test_the_upload_page_and_its_check_show_a_manifests_header_as_text(acme, client, media):
    client.force_login(acme.user)
    text = f"sku,{SVG}\nA-1,x\n"
    response = client.post("/merchant/upload/", {"manifest": ContentFile(text.encode(), name="catalog.csv")})
    assert response.status_code == 400
    assert_escaped(body(response), SVG)
    check = client.post(reverse("p2w_merchant:upload-check"),
                        {"manifest": ContentFile(text.encode(), name="catalog.csv")}).json()
    assert SVG in check["errors"]["manifest"][0]  # the JSON's data is text: merchant.js never writes it as HTML
    assert escape(SVG) in check["html"] and SVG not in check["html"]


# --- staff ---------------------------------------------------------------------------------------------

def test_the_admin_shows_a_jobs_errors_skus_and_message_as_text(admin_client, acme):
    job = ImportJob.objects.create(merchant_key=str(acme.pk), manifest="p2w/imports/x/catalog.csv", state="done",
                                   full_sync=True, errors=[{"row": 2, "field": SCRIPT, "reason": IMG}],
                                   unlisted_skus=[CLOSE, TEMPLATE], message=SVG)
    page = body(admin_client.get(f"/admin/p2w_search/importjob/{job.pk}/change/"))
    assert_escaped(page, SCRIPT, IMG, CLOSE, SVG)
    assert f"<div>row 2: <strong>{escape(SCRIPT)}</strong> {escape(IMG)}</div>" in page
    assert f"{escape(CLOSE)}, {TEMPLATE}" in page


def test_the_admin_lists_and_the_index_page_show_a_merchants_text_as_text(admin_client, hostile):
    product, _ = hostile
    listing = body(admin_client.get("/admin/catalog/product/"))
    assert_escaped(listing, IMG, SVG)
    assert f'<a href="/admin/catalog/product/{product.pk}/change/">{escape(IMG)}</a>' in listing
    assert f'<td class="field-category">{escape(SVG)}</td>' in listing

    indexing.register_model()
    image = product.p2w_images.get()
    indexing.queue_images([image])
    ImageEmbedding.objects.filter(image=image).update(state=ImageEmbedding.State.FAILED, error=CLOSE)
    status = body(admin_client.get("/admin/p2w_search/embeddingmodel/index/"))
    assert_escaped(status, CLOSE)
    assert f"<td>{escape(CLOSE)}</td>" in status


def test_staff_acting_for_a_merchant_see_its_name_as_text(admin_client, hostile):
    merchant = hostile[0].merchant
    choose = body(admin_client.get("/merchant/act-for/"))
    assert f'<option value="{merchant.pk}">{escape(SCRIPT)}</option>' in choose and SCRIPT not in choose
    admin_client.post("/merchant/act-for/", {"merchant": merchant.pk})
    home = body(admin_client.get("/merchant/"))
    assert_escaped(home, SCRIPT)
    assert f"<strong data-acting-for>{escape(SCRIPT)}</strong>" in home
    assert f"<h1>{escape(SCRIPT)}: your catalog</h1>" in home


def test_the_svg_charts_write_names_titles_and_units_as_text():
    chart = line_chart([(IMG, [1, 2]), (SCRIPT, [None, 3])], title=CLOSE, unit=SVG, start_label=IMG, end_label=SVG)
    assert_escaped(chart, IMG, SCRIPT, CLOSE, SVG)
    assert f"<title>{escape(CLOSE)}: largest 3 {escape(SVG)}</title>" in chart
    assert f'fill="#c0392b">\u25cf {escape(SCRIPT)}</text>' in chart


# --- downloads -----------------------------------------------------------------------------------------

def test_a_download_is_an_attachment_whose_name_cannot_break_the_header(acme, admin_client, client, media):
    name = 'a"\r\nSet-Cookie: x=1;<script>.csv'
    job = importer.create_job(owner=acme.user, merchant_key=str(acme.pk), send=False, values={
        "manifest": ContentFile(b"sku\nA-1\n", name=name), "policy": "skip", "full_sync": False})
    stored = job.manifest.name.rsplit("/", 1)[-1]
    assert not set(stored) & set('"\r\n;<> ')
    api = APIClient()
    api.force_authenticate(acme.user)
    client.force_login(acme.user)
    for door, url in ((client, f"/merchant/imports/{job.pk}/files/manifest/"),
                      (api, f"/api/imports/{job.pk}/files/manifest/"),
                      (admin_client, f"/admin/p2w_search/importjob/{job.pk}/files/manifest/")):
        response = door.get(url)
        assert response.status_code == 200, url
        assert response["Content-Disposition"] == f'attachment; filename="import-{job.pk}-{stored}"', url
        assert (response["Content-Type"], response["X-Content-Type-Options"]) == ("text/csv", "nosniff"), url
        assert b"".join(response.streaming_content) == b"sku\nA-1\n"


# --- spreadsheets --------------------------------------------------------------------------------------

def test_the_rejected_rows_file_runs_no_formula_and_imports_as_sent_once_corrected(acme, client, media):
    client.force_login(acme.user)
    job = upload(client, manifest([
        {"sku": "F-1", "title": FORMULA, "description": "@SUM(1+1)", "category": "+cmd", "price": "-1"},
        {"sku": "F-2", "title": "-minus", "description": "\t=tab", "price": "cheap"},
    ]))
    assert (job.rows_accepted, job.rows_rejected) == (0, 2)
    response = client.get(f"/merchant/imports/{job.pk}/files/rejected-rows/")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [*COLUMNS, "error"]
    assert [r[:-1] for r in rows[1:]] == [
        ["F-1", f"'{FORMULA}", "'@SUM(1+1)", "'+cmd", "'-1", "EUR", "true", "red.png"],
        ["F-2", "'-minus", "'\t=tab", "t-shirt", "cheap", "EUR", "true", "red.png"],
    ]
    assert all(cell[:1] not in "=+-@\t\r" for r in rows for cell in r if cell)

    for r in rows[1:]:
        r[4] = "9.50"  # the merchant corrects the prices in a spreadsheet and saves the file as it is
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    again = upload(client, buffer.getvalue())
    assert (again.rows_accepted, again.rows_rejected) == (2, 0)
    products = {p.sku: (p.title, p.description, p.category) for p in Product.objects.filter(merchant=acme)}
    assert products == {"F-1": (FORMULA, "@SUM(1+1)", "+cmd"), "F-2": ("-minus", "=tab", "t-shirt")}


def test_a_manifest_that_holds_a_formula_downloads_without_running_it_and_reads_as_sent(acme, admin_client, client,
                                                                                       media):
    """The manifest was served as sent: staff opening a merchant's from the admin ran its =HYPERLINK(...). A file that
    holds such a cell is written again as the rejected-rows file is, its blank rows kept so that each row keeps its
    number; the import reads every cell of it as it read the file sent. A BOM stays; a file without formulas stays
    byte for byte (the test above)."""
    client.force_login(acme.user)
    sent = ("\ufeffsku;title;description;category;price;images\n"
            "F-1;\"=HYPERLINK(\"\"http://x\"\";\"\"click\"\")\";'@SUM(1+1);t-shirt;9.50;red.png\n"
            "\n"
            "F-2;Tee;\"- a list\n- on two lines\";t-shirt;9.50;red.png\n")
    job = upload(client, sent)
    api = APIClient()
    api.force_authenticate(acme.user)
    served = set()
    for door, url in ((client, f"/merchant/imports/{job.pk}/files/manifest/"),
                      (api, f"/api/imports/{job.pk}/files/manifest/"),
                      (admin_client, f"/admin/p2w_search/importjob/{job.pk}/files/manifest/")):
        response = door.get(url)
        assert (response.status_code, response["Content-Type"]) == (200, "text/csv"), url
        served.add(b"".join(response.streaming_content))
    (data,) = served
    assert data == ("\ufeffsku,title,description,category,price,images\r\n"
                    "F-1,\"'=HYPERLINK(\"\"http://x\"\";\"\"click\"\")\",'@SUM(1+1),t-shirt,9.50,red.png\r\n"
                    "\r\n"
                    "F-2,Tee,\"'- a list\n- on two lines\",t-shirt,9.50,red.png\r\n").encode()
    assert numbered_cells(data) == numbered_cells(sent.encode()) == [
        (2, ["F-1", '=HYPERLINK("http://x";"click")', "@SUM(1+1)", "t-shirt", "9.50", "red.png"]),
        (4, ["F-2", "Tee", "- a list\n- on two lines", "t-shirt", "9.50", "red.png"])]


def numbered_cells(data):
    """``[(row number, cells)]`` of a CSV manifest, as the import reads them."""
    return [(row.number, row.raw) for row in read_manifest(io.BytesIO(data), "catalog.csv", max_rows=10)[1]]


@pytest.mark.parametrize("text", [FORMULA, "'=quoted", "''-1", "'plain", "-", "=", "'", "@", "+1", "\r=x", "\t", ""])
def test_a_cell_written_for_spreadsheets_reads_back_as_it_was(text):
    from p2w_search.uploads.manifest import spreadsheet_cell

    cell = spreadsheet_cell(text)
    assert cell[:1] not in "=+-@\t\r" or not cell
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["sku", "title"], ["S-1", cell]])
    _, rows = read_manifest(io.BytesIO(buffer.getvalue().encode()), "catalog.csv", max_rows=10)
    assert next(rows).raw == ["S-1", text]

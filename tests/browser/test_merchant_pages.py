"""The merchant pages in a real browser, with a real Celery worker: upload, watch, fix the failed rows.

The live server and the worker share a Redis cache (tests/merchant_settings.py), so the rows
a worker checks reach the page while the import runs. Screenshots go to test-reports/screenshots/.
"""

import csv
import io
import re

import factory
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from p2w_search.models import ImportJob
from p2w_search.uploads import importer
from shop_demo.catalog.models import Product
from tests.factories import MerchantFactory, ProductFactory, png
from tests.hostile import HEADER, row, zip_bytes

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PHONE = {"width": 360, "height": 740}
GOOD = [f"A-{n:02d}" for n in range(1, 13)]
BAD = {"A-04": {"price": "cheap"}, "A-09": {"images": "a-09-missing.png"}}  # two bad rows


def image_name(sku):
    return f"{sku.lower()}.png"


def colour(n):
    return (20 * n % 256, 255 - 15 * n % 256, 60 + 11 * n % 180)


@pytest.fixture
def shared_cache(settings):
    """The live server reads the cache the worker writes (Redis); the worker's settings module says the same."""
    from tests import merchant_settings

    settings.CACHES = merchant_settings.CACHES
    return {"DJANGO_SETTINGS_MODULE": "tests.merchant_settings"}


@pytest.fixture
def acme(transactional_db, django_user_model):
    user = django_user_model.objects.create_user("acme", password="acme-pass-1")
    return MerchantFactory(name="Acme Outfitters", slug="acme", user=user)


@pytest.fixture
def rival(transactional_db, django_user_model):
    user = django_user_model.objects.create_user("rival", password="rival-pass-1")
    return MerchantFactory(name="Rival Goods", slug="rival", user=user)


def write_upload(folder, skus, *, bad=None, images=None):
    """A catalog CSV of ``skus`` (with the ``bad`` cells) and a zip of the images it names; return both paths."""
    bad = bad or {}
    lines = [HEADER]
    for sku in skus:
        cells = {"price": "9.50", "images": image_name(sku), **bad.get(sku, {})}
        lines.append(row(sku, cells["images"], title=f"Tee {sku}", price=cells["price"]))
    manifest = folder / "catalog.csv"
    manifest.write_text("".join(lines))
    archive = folder / "images.zip"
    names = images if images is not None else [image_name(sku) for sku in skus]
    archive.write_bytes(zip_bytes([(name, png(colour(GOOD.index(name[:4].upper())))) for name in names]))
    return manifest, archive


def log_in(page, live_server, username, password, *, screenshot=None):
    page.goto(f"{live_server.url}/merchant/")
    page.wait_for_url(re.compile(r"/merchant/login/\?next=/merchant/$"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    if screenshot:
        screenshot(page, "merchant-01-login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/merchant/")


def upload(page, manifest, archive, *, screenshot=None):
    """Fill the upload form by its labels and send it from the keyboard; return the job's id."""
    page.get_by_role("link", name="Upload", exact=True).click()
    page.get_by_label("Catalog file").set_input_files(str(manifest))
    page.get_by_label("Images as a zip").set_input_files(str(archive))
    if screenshot:
        screenshot(page, "merchant-02-upload-form")
    expect(page.get_by_label("Skip it: import the good rows, get the bad ones back as a file")).to_be_checked()
    expect(page.get_by_label("Full sync: unlist my listed products that this file does not name")).not_to_be_checked()
    page.get_by_label("Confirm unlisting").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Upload")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/merchant/imports/(\d+)/$"))
    return int(re.search(r"/imports/(\d+)/$", page.url).group(1))


def bar(page, name):
    """``(value, max)`` of a progress bar of the page."""
    return page.locator(f'progress[data-bar="{name}"]').evaluate("bar => [bar.value, bar.max]")


def readable_at_phone_width(page):
    """Nothing on the page is wider than the phone's screen (no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_merchant_uploads_watches_it_embed_and_fixes_the_failed_rows(
        live_server, page, screenshot, acme, shared_cache, start_worker, tmp_path):
    log_in(page, live_server, "acme", "acme-pass-1", screenshot=screenshot)
    expect(page.locator("h1")).to_have_text("Acme Outfitters: your catalog")

    manifest, archive = write_upload(tmp_path, GOOD, bad=BAD,
                                     images=[image_name(sku) for sku in GOOD if sku != "A-09"])
    job_id = upload(page, manifest, archive, screenshot=screenshot)

    # No worker runs yet: the page says so instead of showing a bar that never moves.
    state = page.locator('[data-part="state"]')
    expect(state).to_contain_text("Queued: no worker is running.")
    assert bar(page, "rows") == [0, 1]
    screenshot(page, "merchant-03-queued-no-worker")

    # The page records what its rows bar shows, every 100 ms, while the test waits on the worker.
    page.evaluate("""() => { window.p2wNotReloaded = true; window.p2wRowsSeen = [];
        window.setInterval(() => { const bar = document.querySelector('progress[data-bar="rows"]');
                                   window.p2wRowsSeen.push([bar.value, bar.max]); }, 100); }""")
    # A prefork worker answers the test's ping while its child imports (a solo one only once it is done).
    start_worker(env={**shared_cache, "P2W_TEST_IMPORT_SERIALIZER": "tests.slow_row_checks."
                      "SlowlyCheckedProductImportSerializer", "P2W_TEST_ROW_CHECK_DELAY": "0.5"}, pool="prefork")
    try:  # a picture of the bar half-way, when the import has not ended yet
        page.wait_for_function("""() => { const bar = document.querySelector('progress[data-bar="rows"]');
                                          return bar.max === 12 && bar.value > 0 && bar.value < 12; }""",
                               timeout=10_000)
        screenshot(page, "merchant-04-importing")
    except PlaywrightTimeout:
        pass
    expect(page.locator('section[data-finished="true"]')).to_have_count(1, timeout=60_000)
    assert bar(page, "rows") == [12, 12] and bar(page, "images") == [10, 10]
    expect(state).to_have_text("Done. 10 rows imported, 10 images queued for embedding, 2 rows skipped.")
    assert page.evaluate("window.p2wNotReloaded") is True  # it all came without a reload
    seen = page.evaluate("window.p2wRowsSeen")
    # The rows moved while the import ran (its rows are not committed yet: the worker reports them).
    assert any(0 < value < 12 and top == 12 for value, top in seen), seen
    failed = page.locator("[data-failed-rows] tbody tr")
    expect(failed).to_have_count(2)
    expect(failed.nth(0)).to_have_text(re.compile(r"5\s*price\s*A valid number is required\."))
    expect(failed.nth(1)).to_have_text(re.compile(r"10\s*images\s*missing image 'a-09-missing.png'"))
    screenshot(page, "merchant-05-done-with-failed-rows")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the failed rows").click()
    rejected = download.value.path().read_text()
    rows = list(csv.DictReader(io.StringIO(rejected)))
    assert [(r["sku"], r["error"]) for r in rows] == [("A-04", "price: A valid number is required."),
                                                      ("A-09", "images: missing image 'a-09-missing.png'")]

    # The merchant corrects the two rows in that file and uploads it again, with the missing image.
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    corrected = fixed / "rejected-rows-corrected.csv"
    corrected.write_text(rejected.replace("cheap", "11.00").replace("a-09-missing.png", "a-09.png"))
    _, images = write_upload(fixed, ["A-04", "A-09"])
    second = upload(page, corrected, images)
    assert second != job_id
    expect(page.locator('section[data-finished="true"]')).to_have_count(1, timeout=60_000)
    expect(state).to_have_text("Done. 2 rows imported, 2 images queued for embedding.")
    assert bar(page, "images") == [2, 2]
    expect(page.locator("[data-failed-rows]")).to_have_count(0)

    page.get_by_role("link", name="Catalog", exact=True).click()
    counts = {name: page.locator(f'[data-count="{name}"]').inner_text()
              for name in ("products", "listed", "unlisted", "embedded", "waiting", "failed")}
    assert counts == {"products": "12", "listed": "12", "unlisted": "0", "embedded": "12", "waiting": "0",
                      "failed": "0"}
    assert set(Product.objects.filter(merchant=acme).values_list("sku", flat=True)) == set(GOOD)
    expect(page.locator("[data-jobs] tbody tr")).to_have_count(2)
    screenshot(page, "merchant-06-catalog-all-embedded")

    page.set_viewport_size(PHONE)
    for path, name in ((f"/merchant/imports/{job_id}/", "merchant-07-phone-upload-result"),
                       ("/merchant/upload/", "merchant-08-phone-upload-form"),
                       ("/merchant/", "merchant-09-phone-catalog")):
        page.goto(f"{live_server.url}{path}")
        assert readable_at_phone_width(page), f"{path} scrolls sideways at 360 px"
        screenshot(page, name)


def test_another_merchant_can_neither_see_nor_download_an_upload(live_server, page, screenshot, acme, rival, media):
    manifest = HEADER + row("A-01") + row("A-02", price="cheap")
    job = ImportJob(owner=acme.user, merchant_key=str(acme.pk))
    job.manifest.save("catalog.csv", io.BytesIO(manifest.encode()), save=False)
    job.archive.save("images.zip", io.BytesIO(zip_bytes([("red.png", png())])), save=False)
    job.save()
    importer.run_import(job)
    assert job.rejected_rows  # all three files exist

    log_in(page, live_server, "rival", "rival-pass-1")
    page.get_by_role("link", name="Uploads", exact=True).click()
    expect(page.locator("h1")).to_have_text("Your uploads")
    expect(page.locator("[data-jobs]")).to_have_count(0)
    expect(page.get_by_text("No upload yet.")).to_be_visible()
    screenshot(page, "merchant-10-rival-sees-no-upload")
    for path in (f"/merchant/imports/{job.pk}/", f"/merchant/imports/{job.pk}/progress/",
                 *(f"/merchant/imports/{job.pk}/files/{name}/" for name in ("manifest", "archive", "rejected-rows")),
                 f"/api/imports/{job.pk}/", f"/api/imports/{job.pk}/files/manifest/"):
        response = page.request.get(f"{live_server.url}{path}")
        assert response.status == 404, f"{path}: HTTP {response.status}"

    # The owner, in the same browser after logging in, gets each of them.
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server, "acme", "acme-pass-1")
    for name in ("manifest", "archive", "rejected-rows"):
        assert page.request.get(f"{live_server.url}/merchant/imports/{job.pk}/files/{name}/").status == 200


def test_a_full_sync_shows_what_it_unlists_before_anything_is_sent(live_server, page, screenshot, acme, tmp_path,
                                                                    media):
    ProductFactory.create_batch(10, merchant=acme, sku=factory.Iterator(GOOD[:10]))
    manifest, archive = write_upload(tmp_path, GOOD[:2])
    log_in(page, live_server, "acme", "acme-pass-1")
    page.get_by_role("link", name="Upload", exact=True).click()
    page.get_by_label("Catalog file").set_input_files(str(manifest))
    page.get_by_label("Images as a zip").set_input_files(str(archive))
    page.get_by_label("Full sync: unlist my listed products that this file does not name").check()
    count = page.locator("#full-sync-count")
    expect(count).to_contain_text("A full sync of this file unlists 8 of your 10 listed products: A-03, A-04")
    expect(count).to_contain_text("Full sync refused: it would unlist 8 of your 10 listed products")
    expect(count).to_contain_text("type 8 in “Confirm unlisting”")
    screenshot(page, "merchant-11-full-sync-count")
    assert not ImportJob.objects.exists() and Product.objects.filter(listed=True).count() == 10

    page.get_by_label("Confirm unlisting").fill("8")
    page.get_by_label("Confirm unlisting").press("Tab")  # a change event: the count is checked again
    expect(count).not_to_contain_text("Full sync refused")
    expect(count).to_contain_text("unlists 8 of your 10 listed products")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/merchant/imports/\d+/$"))
    job = ImportJob.objects.get()
    assert (job.full_sync, job.confirm_unlist, job.merchant_key) == (True, 8, str(acme.pk))


def test_more_image_files_than_one_request_takes_are_refused_before_sending(live_server, page, acme, tmp_path,
                                                                             media):
    """Django's DATA_UPLOAD_MAX_NUMBER_FILES (100: the manifest and 99 images) refuses more with a bare 400 page
    before any view runs; the form says so when the files are chosen, and sends nothing."""
    manifest, _ = write_upload(tmp_path, GOOD[:1])
    log_in(page, live_server, "acme", "acme-pass-1")
    page.get_by_role("link", name="Upload", exact=True).click()
    images = page.get_by_label("Or the image files themselves")
    expect(page.locator("#upload-form")).to_contain_text("at most 99 (more go in a zip)")
    page.get_by_label("Catalog file").set_input_files(str(manifest))
    one = png(colour(1))
    images.set_input_files([{"name": f"{n}.png", "mimeType": "image/png", "buffer": one} for n in range(100)])
    assert images.evaluate("input => input.validationMessage") == \
        "Choose at most 99 images here, or send them as one zip."
    page.get_by_role("button", name="Upload").click()
    assert page.url.endswith("/merchant/upload/") and not ImportJob.objects.exists()

    images.set_input_files([{"name": f"{n}.png", "mimeType": "image/png", "buffer": one} for n in range(99)])
    assert images.evaluate("input => input.validationMessage") == ""

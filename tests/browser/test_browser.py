"""The storefront in a real browser: words, a product, the shopper's photo with words, refined again, on a phone."""

import base64
import hashlib
import io
import re
from dataclasses import replace
from urllib.parse import urlencode

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image

from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.embedders import get_embedder
from p2w_search.imaging import load_image
from p2w_search.models import ImageEmbedding, ProductImage
from shop_demo.catalog import generator
from shop_demo.catalog.models import Merchant, Product
from tests.ranking import assert_ranking, product_scores

pytestmark = pytest.mark.browser

IMAGE_SIZE = 192  # rendered product photos, big enough to look right on the product page
# "This, but in another colour": the demo catalog's product WANTED, photographed in PHOTO_COLOUR, is
# what a shopper's photo plus "in <its colour>" must find first (checked with the demo's shipped CLIP).
WANTED, PHOTO_COLOUR = 2, "blue"  # a red mug with a heart, photographed blue; "in red"


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def load_catalog(size):
    """The demo generator's first ``size`` products (seed 3) with rendered photos, embedded by the serving CLIP."""
    merchant = Merchant.objects.create(name="Demo Outfitters", slug="demo-outfitters")
    products = []
    for item in generator.generate_products(size, seed=3):
        product = Product.objects.create(
            merchant=merchant, sku=item.sku, title=item.title, description=item.description,
            category=item.category, price=item.price, in_stock=item.in_stock,
        )
        data = png_bytes(generator.render(item, seed=3, size=IMAGE_SIZE))
        image = ProductImage(product=product, sha256=hashlib.sha256(data).hexdigest())
        image.file.save(f"{item.sku.lower()}.png", ContentFile(data), save=True)
        products.append(product)
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return products


@pytest.fixture
def catalog(transactional_db, media):
    """A small synthetic catalog (the demo's generator), embedded with the tiny test CLIP."""
    return load_catalog(16)


def grid_ids(page, name):
    """Product ids of one grid of the page, in order; fails when the page has no such grid."""
    assert page.locator(f'[data-grid="{name}"]').count() == 1, f"the page has no {name!r} grid"
    return [int(pk) for pk in page.locator(f'[data-grid="{name}"] [data-product-id]').evaluate_all(
        "cards => cards.map(card => card.dataset.productId)")]


def api_ids(path, payload, **params):
    """Product ids the search API answers, in order: what the page's grid must show."""
    client = APIClient()
    if path.endswith("/composed/"):
        response = client.post(f"{path}?k={params['k']}", payload, format="json")
    else:
        response = client.get(path, {**payload, **params})
    assert response.status_code == 200, response.content
    return [result["product"]["id"] for result in response.json()["results"]]


def assert_images_load(page):
    """Every image on the page is served (no broken product photos)."""
    sources = page.locator("img").evaluate_all("imgs => imgs.map(img => img.currentSrc || img.src)")
    assert sources
    for src in sources:
        if not src or src.startswith("data:"):  # the photo box's preview before a photo is chosen; the shopper's own
            continue
        response = page.request.get(src)
        assert response.ok, f"{src}: HTTP {response.status}"
        assert response.headers["content-type"].startswith("image/"), src


def test_search_by_text_open_a_product_and_change_it(live_server, catalog, page, screenshot):
    page.goto(f"{live_server.url}/")
    assert grid_ids(page, "results") == [p.pk for p in reversed(catalog)]  # newest first
    assert_images_load(page)
    screenshot(page, "01-home")

    page.fill('input[name="q"]', "red t-shirt")
    page.press('input[name="q"]', "Enter")
    page.wait_for_url(re.compile(r"\?q=red\+t-shirt"))
    assert page.locator("h1").inner_text() == "Results for “red t-shirt”"
    results = grid_ids(page, "results")
    assert_ranking(results, product_scores(get_embedder().embed_texts(["red t-shirt"])[0], among=catalog))
    screenshot(page, "02-text-search")

    page.locator('[data-grid="results"] .card__link').first.click()
    page.wait_for_url(re.compile(rf"/product/{results[0]}/$"))
    product = Product.objects.get(pk=results[0])
    assert page.locator("h1").inner_text() == product.title
    before = grid_ids(page, "similar")
    assert before == api_ids("/api/search/similar/", {"product": product.pk}, k=6)
    assert len(before) == 6 and product.pk not in before
    assert_images_load(page)
    screenshot(page, "03-product")

    assert page.locator('select[name="method"]').input_value() == "pic2word_plus_image"
    page.fill('input[name="change"]', "in red")
    page.get_by_role("button", name="Show me").click()
    page.wait_for_url(re.compile(r"\?change=in\+red&method=pic2word_plus_image$"))
    after = grid_ids(page, "changed")
    assert after == api_ids("/api/search/composed/", {"product": product.pk, "text": "in red"}, k=12)
    assert len(after) == 12 and product.pk not in after
    assert page.locator("#p2w-changed h2").inner_text() == "Like this, but “in red”"
    screenshot(page, "04-like-this-but-in-red")

    # A baseline on the same change ranks differently, and a result opens for the next refinement.
    page.select_option('select[name="method"]', "text_only")
    page.get_by_role("button", name="Show me").click()
    page.wait_for_url(re.compile(r"method=text_only$"))
    baseline = grid_ids(page, "changed")
    assert baseline == api_ids("/api/search/composed/", {"product": product.pk, "text": "in red",
                                                         "method": "text_only"}, k=12)
    assert baseline != after

    page.locator('[data-grid="changed"] .card__link').first.click()
    page.wait_for_url(re.compile(r"/product/\d+/$"))
    page.get_by_role("link", name="with stripes").click()
    page.wait_for_url(re.compile(r"\?change=with\+stripes$"))
    next_id = int(re.search(r"/product/(\d+)/", page.url).group(1))
    refined = grid_ids(page, "changed")
    assert refined == api_ids("/api/search/composed/", {"product": next_id, "text": "with stripes"}, k=12)
    assert len(refined) == 12 and next_id not in refined
    screenshot(page, "05-refined-with-stripes")


def test_search_by_photo(live_server, catalog, page, screenshot, tmp_path):
    item = generator.generate_products(16, seed=3)[5]
    photo = tmp_path / "my-photo.png"
    data = png_bytes(generator.render(item, seed=7, variant=1, size=256))  # another photo of it
    photo.write_bytes(data)

    page.goto(f"{live_server.url}/")
    page.set_input_files("#p2w-photo", str(photo))
    page.get_by_role("button", name="Search with this photo").click()
    page.wait_for_url(re.compile(r"\?photo=[\w-]+&method=pic2word_plus_image$"))
    assert page.locator("h1").inner_text() == "Products like your photo"
    query = get_embedder().embed_images([load_image(data, max_bytes=10**7, max_pixels=10**7)])[0]
    assert_ranking(grid_ids(page, "results"), product_scores(query, among=catalog))
    assert page.locator('img[alt="Your photo"]').count() == 1
    assert_images_load(page)
    screenshot(page, "06-photo-search")


def test_a_file_that_is_not_a_photo_shows_the_reason(live_server, catalog, page, screenshot, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.goto(f"{live_server.url}/?category={catalog[0].category}")
    page.set_input_files("#p2w-photo", str(notes))
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.get_by_role("button", name="Search with this photo").click()
    assert answer.value.status == 400
    page.wait_for_load_state()
    assert "This photo cannot be used: not a recognised image format." in page.locator(".p2w-photo").inner_text()
    assert re.search(rf"/\?category={catalog[0].category}$", page.url)  # the filter is kept
    screenshot(page, "07-bad-photo")


def photo_bytes(item, colour=None, *, size=256):
    """A shopper's photo of a catalog product (another pose and background), in ``colour`` when given."""
    attributes = item.attributes if colour is None else replace(item.attributes, colour=colour)
    return png_bytes(generator.render(generator.make_product(item.index, attributes, seed=3), seed=7, variant=1,
                                      size=size))


def upload_photo(page, path, change=None, method=None):
    """Choose a photo in the photo box, with a change and a method when given, and search with it."""
    page.set_input_files("#p2w-photo", str(path))
    if change is not None:
        page.fill("#p2w-photo-change", change)
    if method is not None:
        page.select_option("#p2w-photo-method", method)
    page.get_by_role("button", name="Search with this photo").click()
    page.wait_for_url(re.compile(r"\?(.*&)?photo=[\w-]+"))


def api_photo_ids(data, *, text=None, k=24, **filters):
    """Product ids the API answers for an uploaded photo (with a change: the composed search), in order."""
    path = "/api/search/composed/" if text else "/api/search/image/"
    query = urlencode({"k": k, "page_size": 100, **filters})
    payload = {"image": io.BytesIO(data), **({"text": text} if text else {})}
    payload["image"].name = "photo.png"
    response = APIClient().post(f"{path}?{query}", payload, format="multipart")
    assert response.status_code == 200, response.content
    return [result["product"]["id"] for result in response.json()["results"]]


def kept_photos(media):
    folder = media.parent / "uploads" / "p2w-photos"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def demo_clip(settings):
    """The demo's own small CLIP and mapping (shipped weights), where composed search works as in the demo."""
    import shop_demo.settings as demo

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "EMBEDDERS": {"default": demo.P2W_SEARCH["EMBEDDERS"]["default"]}}


@pytest.fixture
def demo_catalog(demo_clip, transactional_db, media):
    """The demo catalog's first 60 products (seed 3), embedded with the demo's CLIP: enough for pages of 24."""
    return load_catalog(60)


def test_photo_plus_words_puts_the_product_first_then_refines_twice(live_server, demo_catalog, page, screenshot,
                                                                     tmp_path, media):
    items = {item.sku: item for item in generator.generate_products(60, seed=3)}
    wanted = demo_catalog[WANTED]
    item = items[wanted.sku]
    photo, data = tmp_path / "jacket-i-saw.png", photo_bytes(item, PHOTO_COLOUR)
    photo.write_bytes(data)
    change = f"in {item.attributes.colour}"

    page.goto(f"{live_server.url}/")
    upload_photo(page, photo, change=change)
    first = grid_ids(page, "results")
    best = Product.objects.get(pk=first[0])
    assert items[best.sku].attributes == item.attributes  # the photo's product with the asked colour comes first
    assert first == api_photo_ids(data, text=change)
    assert page.locator("h1").inner_text() == f"Like your photo, but “{change}”"
    assert page.locator("#p2w-photo-results .p2w-pill").inner_text() == "Pic2Word + reference photo (composed)"
    assert page.locator('img[alt="Your photo"]').count() == 1
    assert_images_load(page)
    screenshot(page, "10-photo-plus-words")

    refine = page.locator("form.p2w-refine")
    refine.locator('input[type="text"][name="change"]').fill("with stripes")
    refine.get_by_role("button", name="Refine").click()
    page.wait_for_url(re.compile(r"change=with\+stripes"))
    assert grid_ids(page, "results") == api_photo_ids(data, text=f"{change} , with stripes")
    assert page.locator("h1").inner_text() == f"Like your photo, but “{change}”, then “with stripes”"

    refine.get_by_role("link", name="with a star print").click()
    page.wait_for_url(re.compile(r"change=with\+a\+star\+print"))
    assert grid_ids(page, "results") == api_photo_ids(data, text=f"{change} , with stripes , with a star print")
    steps = page.locator(".p2w-step > a:first-child").all_inner_texts()
    assert steps == [change, "with stripes", "with a star print"]
    screenshot(page, "11-photo-refined-twice")

    page.get_by_role("link", name=f"Remove “{change}”").click()  # take the first change back
    page.wait_for_load_state()
    assert grid_ids(page, "results") == api_photo_ids(data, text="with stripes , with a star print")
    assert len(kept_photos(media)) == 2  # one photo (and its preview): the shopper never sent it again


def test_photo_results_page_through_and_filter_without_uploading_again(live_server, demo_catalog, page, screenshot,
                                                                        tmp_path, media):
    item = generator.generate_products(60, seed=3)[WANTED]
    photo, data = tmp_path / "photo.png", photo_bytes(item)
    photo.write_bytes(data)
    page.goto(f"{live_server.url}/")
    upload_photo(page, photo)
    first = grid_ids(page, "results")
    page.get_by_role("link", name="More →").click()
    page.wait_for_url(re.compile(r"page=2"))
    second = grid_ids(page, "results")
    assert len(first) == len(second) == 24
    assert first + second == api_photo_ids(data, k=48)

    category = item.category
    page.select_option('select[name="category"]', category)
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(rf"category={category}"))
    assert "photo=" in page.url and "page=" not in page.url
    filtered = grid_ids(page, "results")
    assert filtered == api_photo_ids(data, category=category)
    assert {Product.objects.get(pk=pk).category for pk in filtered} == {category}
    assert len(kept_photos(media)) == 2  # the photo was sent once
    screenshot(page, "12-photo-filtered")


def test_a_kept_photo_expires_and_is_then_refused_with_a_message(live_server, catalog, page, screenshot, tmp_path,
                                                                  settings, media):
    photo = tmp_path / "photo.png"
    photo.write_bytes(photo_bytes(generator.generate_products(16, seed=3)[2]))
    page.goto(f"{live_server.url}/")
    upload_photo(page, photo, change="in red")
    assert len(kept_photos(media)) == 2
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PHOTO_KEEP_SECONDS": 0}  # its time is up
    with page.expect_response(lambda response: "change=with+stripes" in response.url) as answer:
        page.locator("form.p2w-refine").get_by_role("link", name="with stripes").click()
    assert answer.value.status == 410
    notice = page.locator("#p2w-photo-results .p2w-notice").inner_text()
    assert notice == ("Your photo is no longer kept: photos are kept for 0 seconds after the upload. "
                      "Upload it again to search with it.")
    assert page.locator('[data-grid="results"]').count() == 0 and page.locator("#p2w-photo").is_visible()
    assert kept_photos(media) == []
    screenshot(page, "13-photo-expired")


def test_while_a_photo_is_encoding_the_page_says_so(live_server, catalog, page, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(photo_bytes(generator.generate_products(16, seed=3)[2]))
    page.goto(f"{live_server.url}/")
    page.set_input_files("#p2w-photo", str(photo))
    # Read the page in the same turn as the submit, before the browser leaves it.
    shown = page.evaluate("""() => {
        const form = document.querySelector('form.p2w-photo');
        form.requestSubmit();
        const status = form.querySelector('.p2w-busy');
        return {hidden: status.hidden, text: status.textContent, busy: form.getAttribute('aria-busy')};
    }""")
    assert shown == {"hidden": False, "busy": "true",
                     "text": "Searching with your photo… encoding it takes a second or two."}
    page.wait_for_url(re.compile(r"\?photo=[\w-]+"))
    assert page.locator("h1").inner_text() == "Products like your photo"


def test_a_large_photo_is_scaled_down_in_the_browser_and_a_dropped_photo_is_taken(live_server, catalog, page,
                                                                                  settings, media):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "MAX_IMAGE_BYTES": 300_000}
    noise = np.random.default_rng(0).integers(0, 256, (1500, 2400, 3), dtype=np.uint8)
    big = png_bytes(Image.fromarray(noise))
    assert len(big) > 300_000  # as sent, the server would refuse it
    page.goto(f"{live_server.url}/")
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'phone-photo.png', {type: 'image/png'}));
        const zone = document.querySelector('[data-p2w-drop]');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", base64.b64encode(big).decode())
    assert page.evaluate("document.querySelector('#p2w-photo').files[0].name") == "phone-photo.png"
    page.locator(".p2w-drop__preview").wait_for(state="visible")  # the shopper sees the photo they dropped
    page.get_by_role("button", name="Search with this photo").click()
    page.wait_for_url(re.compile(r"\?photo=[\w-]+"))
    assert page.locator("h1").inner_text() == "Products like your photo" and len(grid_ids(page, "results")) == 16
    (kept,) = [path for path in kept_photos(media) if path.suffix != ".jpg"]
    sent = Image.open(kept)
    # a JPEG of the same shape, at most 1600 px long, and smaller still until it fits the server's limit
    assert sent.format == "JPEG" and max(sent.size) <= 1600 and kept.stat().st_size <= 300_000
    assert sent.size[0] / sent.size[1] == pytest.approx(2400 / 1500, rel=0.01)


def test_search_unavailable_says_so_and_browsing_still_works(live_server, catalog, page, settings, screenshot):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 1.0,
                           "QUERY_QUEUE": "p2w_query_nobody_listens"}
    page.goto(f"{live_server.url}/?q=red+t-shirt")
    notice = page.locator(".p2w-notice").inner_text()
    assert notice.startswith("Search is unavailable right now. Search is busy right now. No search worker answered")
    assert grid_ids(page, "browse") == [p.pk for p in reversed(catalog)]
    screenshot(page, "14-search-unavailable")
    page.locator('[data-grid="browse"] .card__link').first.click()
    page.wait_for_url(re.compile(r"/product/\d+/$"))
    assert page.locator("h1").inner_text() == catalog[-1].title


def test_pages_fit_a_phone_screen(live_server, catalog, browser, screenshot, tmp_path):
    context = browser.new_context(viewport={"width": 360, "height": 780}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/")
        chooser, camera = page.locator('input[type="file"][name="photo"]').all()
        assert chooser.get_attribute("accept") == "image/*" and camera.get_attribute("accept") == "image/*"
        assert camera.get_attribute("capture") == "environment"
        assert page.get_by_text("Take a photo").is_visible()  # the camera button shows on a touch screen
        photo = tmp_path / "photo.png"
        photo.write_bytes(photo_bytes(generator.generate_products(16, seed=3)[2]))
        pages = [("/", "08-phone-home"), (f"/product/{catalog[0].pk}/?change=in+blue&change=with+stripes",
                                          "09-phone-product")]
        for path, name in pages:
            page.goto(f"{live_server.url}{path}")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
            screenshot(page, name)
        page.goto(f"{live_server.url}/")
        upload_photo(page, photo, change="in red")
        page.locator("form.p2w-refine").get_by_role("link", name="with stripes").click()
        page.wait_for_url(re.compile(r"change=with\+stripes"))
        assert len(grid_ids(page, "results")) == 16
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the photo results scroll sideways by {overflow}px on a phone"
        screenshot(page, "15-phone-photo-refined")
    finally:
        context.close()

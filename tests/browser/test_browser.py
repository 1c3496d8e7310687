"""The storefront in a real browser: search by words, open a product, "like this, but ...", search by photo."""

import hashlib
import io
import re

import pytest
from django.core.files.base import ContentFile

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


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def catalog(transactional_db, media):
    """A small synthetic catalog (the demo's generator), embedded with the tiny test CLIP."""
    merchant = Merchant.objects.create(name="Demo Outfitters", slug="demo-outfitters")
    products = []
    for item in generator.generate_products(16, seed=3):
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
        if src.startswith("data:"):
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

    assert page.locator('select[name="method"]').input_value() == "pic2word"
    page.fill('input[name="change"]', "in red")
    page.get_by_role("button", name="Show me").click()
    page.wait_for_url(re.compile(r"\?change=in\+red&method=pic2word$"))
    after = grid_ids(page, "changed")
    assert after == api_ids("/api/search/composed/", {"product": product.pk, "text": "in red"}, k=12)
    assert len(after) == 12 and product.pk not in after
    assert page.locator("#changed h2").inner_text() == "Like this, but “in red”"
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
    page.set_input_files('input[name="photo"]', str(photo))
    page.get_by_role("button", name="Find similar").click()
    page.wait_for_selector('[data-grid="results"]')
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
    page.set_input_files('input[name="photo"]', str(notes))
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.get_by_role("button", name="Find similar").click()
    assert answer.value.status == 400
    assert "This photo cannot be used: not a recognised image format." in page.locator(".photo-form").inner_text()
    screenshot(page, "07-bad-photo")


def test_pages_fit_a_phone_screen(live_server, catalog, browser, screenshot):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        for path, name in (("/", "08-phone-home"), (f"/product/{catalog[0].pk}/?change=in+blue", "09-phone-product")):
            page.goto(f"{live_server.url}{path}")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
            screenshot(page, name)
    finally:
        context.close()

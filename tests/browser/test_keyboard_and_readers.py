"""The shopper's journey and the merchant's upload for a keyboard-only or screen reader user, in chromium.

Every step is taken with the keyboard (Tab, Enter, Space); a file is chosen on a focused file input,
as the picker a keyboard user opens would. What a screen reader gets is read from the page's
accessibility tree and its aria attributes.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.browser import test_browser, test_merchant_pages
from tests.browser.test_browser import generator, photo_bytes
from tests.browser.test_merchant_pages import GOOD, write_upload

pytestmark = pytest.mark.browser
catalog = test_browser.catalog  # the fixtures of the browser tests, shared
acme = test_merchant_pages.acme


def active(page):
    """The focused element: its tag, id, class and accessible name as the page gives it."""
    return page.evaluate("""() => {
        const e = document.activeElement;
        return {tag: e.tagName.toLowerCase(), id: e.id, cls: e.className,
                text: (e.getAttribute('aria-label') || e.innerText || '').trim()};
    }""")


def type_two_and_send(page, label, first, second):
    """With the keyboard only: type ``first`` in the field labelled ``label``, Tab, type ``second``, Enter; wait for
    the page the form sends to."""
    page.get_by_label(label).focus()
    page.keyboard.type(first)
    page.keyboard.press("Tab")
    page.keyboard.type(second)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def described_by(locator):
    """The text of the elements a control's aria-describedby names, joined by a space (what a screen reader reads)."""
    return locator.evaluate("""control => (control.getAttribute('aria-describedby') || '').split(/\\s+/)
        .filter(Boolean)
        .map(id => { const e = document.getElementById(id); return e ? e.textContent.trim() : '#' + id; })
        .join(' ')""")


def test_the_first_tab_skips_to_the_results_and_the_next_reaches_the_first_product(live_server, catalog, page):
    page.goto(f"{live_server.url}/?q=red+t-shirt")
    page.keyboard.press("Tab")
    assert active(page) == {"tag": "a", "id": "", "cls": "skip", "text": "Skip to the results"}
    assert page.locator(".skip").evaluate("a => a.getBoundingClientRect().left") >= 0  # shown once focused
    page.keyboard.press("Enter")
    assert active(page)["id"] == "results"
    page.keyboard.press("Tab")
    first = page.locator('[data-grid="results"] .card__link').first
    expect(first).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/product/\d+/$"))
    page.keyboard.press("Tab")
    assert active(page)["text"] == "Skip to the content"


def test_a_focused_product_card_shows_its_focus(live_server, catalog, page):
    page.goto(f"{live_server.url}/")
    card = page.locator('[data-grid="results"] .card').first
    box = card.bounding_box()
    clip = {"x": box["x"] - 6, "y": box["y"] - 6, "width": box["width"] + 12, "height": box["height"] + 12}
    before = page.screenshot(clip=clip, animations="disabled")
    page.locator(".btn--primary", has_text="Apply filters").focus()
    page.keyboard.press("Tab")
    expect(card.locator(".card__link")).to_be_focused()
    assert page.screenshot(clip=clip, animations="disabled") != before, "the focused card looks the same"
    assert card.evaluate("c => getComputedStyle(c).outlineStyle") == "solid"


def test_a_refused_photo_takes_the_focus_to_the_field_that_says_why(live_server, catalog, page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.goto(f"{live_server.url}/")
    photo = page.locator("#p2w-photo")
    photo.focus()
    photo.set_input_files(str(notes))
    page.keyboard.press("Tab")  # past the camera input (hidden on a desktop) to the change
    expect(page.locator("#p2w-photo-change")).to_be_focused()
    page.get_by_role("button", name="Search with this photo").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert active(page)["id"] == "p2w-photo"
    assert photo.get_attribute("aria-invalid") == "true"
    assert described_by(photo) == "This photo cannot be used: not a recognised image format."


def test_a_change_too_long_takes_the_focus_to_the_field_that_says_why(live_server, catalog, page):
    product = catalog[0]
    page.goto(f"{live_server.url}/product/{product.pk}/?change={'x' * 301}")
    field = page.get_by_role("combobox", name="Like this, but…")
    expect(field).to_be_focused()
    assert field.get_attribute("aria-invalid") == "true"
    assert described_by(field) == "Ensure each change has at most 300 characters (this one has 301)."


def test_a_bad_filter_is_described_on_its_field_and_the_summary_takes_the_focus(live_server, catalog, page):
    page.goto(f"{live_server.url}/")
    type_two_and_send(page, "Min price", "50", "10")  # the max price is the next field
    assert active(page)["cls"] == "notice notice--error"
    assert active(page)["text"].startswith("Please check the filters.")
    price = page.get_by_label("Max price")
    assert price.get_attribute("aria-invalid") == "true"
    assert described_by(price) == "The maximum price is below the minimum."


def test_the_photo_search_status_is_a_live_region_from_the_start_and_keeps_the_focus(live_server, catalog, page,
                                                                                  tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(photo_bytes(generator.generate_products(16, seed=3)[2]))
    page.goto(f"{live_server.url}/")
    status = page.locator("form.p2w-photo [role=status]")
    # In the accessibility tree before it speaks: a live region that appears with its text is often not announced.
    assert status.get_attribute("hidden") is None and status.evaluate("s => getComputedStyle(s).display") != "none"
    assert status.inner_text() == ""
    page.locator("#p2w-photo").set_input_files(str(photo))
    page.get_by_role("button", name="in red").focus()
    page.keyboard.press("Space")  # a suggestion fills the change
    expect(page.locator("#p2w-photo-change")).to_have_value("in red")
    button = page.get_by_role("button", name="Search with this photo")
    button.focus()
    shown = page.evaluate("""() => {
        document.activeElement.form.requestSubmit(document.activeElement);
        const status = document.querySelector('form.p2w-photo [role=status]');
        return {text: status.textContent, focused: document.activeElement.textContent};
    }""")
    assert shown == {"text": "Searching with your photo… encoding it takes a second or two.",
                     "focused": "Search with this photo"}
    page.wait_for_url(re.compile(r"\?photo=[\w-]+&change=in\+red"))


def test_the_check_of_a_catalog_file_describes_the_file_field(live_server, page, acme, tmp_path):
    page.goto(f"{live_server.url}/merchant/login/")
    type_two_and_send(page, "Username", "acme", "acme-pass-1")  # the password is the next field
    page.goto(f"{live_server.url}/merchant/upload/")
    manifest = page.get_by_label("Catalog file")
    bad = tmp_path / "bad.csv"
    bad.write_text("nonsense;cols\n1;2\n")
    manifest.focus()
    manifest.set_input_files(str(bad))
    expect(page.locator('#full-sync-count [data-check="errors"]')).to_be_visible()
    expect(manifest).to_be_focused()  # the answer is announced (aria-live), the focus stays
    assert page.locator("#full-sync-count").get_attribute("aria-live") == "polite"
    assert manifest.get_attribute("aria-invalid") == "true"
    assert described_by(manifest) == (
        "CSV or JSON Lines (.csv, .jsonl), one product a row. The columns are explained below. "
        "The manifest cannot be used: unknown columns 'nonsense', 'cols'; the columns are category, currency, "
        "description, error, images, in_stock, price, sku, title.")
    good, _ = write_upload(tmp_path, GOOD)
    manifest.set_input_files(str(good))
    expect(page.locator('#full-sync-count [data-check="ok"]')).to_be_visible()
    assert manifest.get_attribute("aria-invalid") is None
    assert described_by(manifest).endswith("The file reads well: 12 products (SKUs), every column known. Each row's "
                                           "values are checked as it is imported; a row that fails comes back to fix.")


# A text shown shorter than it is: its height as laid out against its height with nothing clamping or clipping it.
CUT_TEXT = """elements => elements.filter(e => {
    const shown = e.getBoundingClientRect().height;
    const style = e.getAttribute('style');
    e.style.cssText += ';display:block;-webkit-line-clamp:none;overflow:visible;max-height:none;height:auto';
    const full = e.getBoundingClientRect().height;
    if (style === null) { e.removeAttribute('style'); } else { e.setAttribute('style', style); }
    return full > shown + 1;
}).map(e => e.textContent)"""


def test_at_200_percent_zoom_no_product_name_is_cut_and_nothing_scrolls_sideways(live_server, catalog, browser):
    context = browser.new_context(viewport={"width": 640, "height": 900}, device_scale_factor=2)
    try:
        page = context.new_page()
        for path in ["/", f"/product/{catalog[0].pk}/?change=in+red&change=with+stripes"]:
            page.goto(f"{live_server.url}{path}")
            assert page.evaluate("document.documentElement.scrollWidth - innerWidth") <= 0, path
            cut = page.locator(".card__title").evaluate_all(CUT_TEXT)
            assert cut == [], f"{path}: product names cut off at 200% zoom"
    finally:
        context.close()


def test_a_page_past_the_end_focuses_its_notice_whose_link_is_not_told_by_colour_alone(live_server, catalog, page):
    page.goto(f"{live_server.url}/?page=99&category={catalog[0].category}")
    assert active(page)["text"] == "There is no such page of products. See the first page."
    link = page.get_by_role("link", name="See the first page")
    assert link.evaluate("a => getComputedStyle(a).textDecorationLine") == "underline"


def test_the_camera_button_of_a_phone_shows_the_focus_of_its_input(live_server, catalog, browser):
    context = browser.new_context(viewport={"width": 360, "height": 780}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/")
        page.locator("#p2w-photo").focus()
        page.keyboard.press("Tab")
        camera = page.locator(".p2w-camera")
        expect(camera.locator("input")).to_be_focused()
        assert camera.evaluate("c => getComputedStyle(c).outlineStyle") == "solid"  # its input is 1px, clipped
    finally:
        context.close()

"""Playwright driving Debian's chromium (/usr/bin/chromium) against pytest-django's live server.

The browser is never downloaded: `bin/install-browser` installs chromium with apt, and the
tests fail, not skip, when it is missing, since CI installs it.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # a container's /dev/shm (64 MB under Docker) is too small for chromium's renderers
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-reports" / "screenshots"


@pytest.fixture(scope="session")
def chromium_executable():
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"The browser tests need Debian's chromium at {CHROMIUM}; install it with bin/install-browser "
                    "(apt-get install chromium). They fail rather than skip because CI installs it.", pytrace=False)
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which Django takes for an async
    # context; the ORM calls of the tests are plain synchronous code all the same.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def screenshot():
    """Save a full-page screenshot as test-reports/screenshots/<name>.png, once its images have loaded."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(img => { img.loading = 'eager'; })")
        page.wait_for_function("Array.from(document.images).every(img => img.complete)")
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take

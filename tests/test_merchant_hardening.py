"""The merchant pages hardened: each test pins one problem that was found and fixed.

- "Embed again" (a POST that re-queues the failed embeddings of the merchant in the session) did not check which
  merchant its form was opened for, as the upload form does: staff who chose another merchant in a second tab
  re-queued that one's images. It is refused (409) as the upload is.
- The merchant pages and the job file downloads (pages and API) sent no ``Cache-Control``: a shared proxy or a
  browser's back/forward cache on a shared computer could keep one merchant's pages and files. They send
  ``private, no-store``.
"""

import re

import pytest

from p2w_search import indexing
from p2w_search.models import ImageEmbedding, ImportJob
from tests.factories import ProductFactory, ProductImageFactory, png
from tests.hostile import HEADER, row
from tests.test_merchant_pages import api_client, post_upload, run, text

EMBED_AGAIN = "/merchant/embed-again/"
SWITCHED = ("This form was opened for another merchant than the one you act for now, Rival (chosen on another page). "
            "Nothing was queued to be embedded again: check whom you act for, above, and send the form again.")
PRIVATE = "private, no-store"
NEVER_CACHED = "max-age=0, no-cache, no-store, must-revalidate, private"  # the progress poll's never_cache, kept


def alert(response):
    found = re.search(r'role="alert"[^>]*>(.*?)</(?:p|div)>', response.content.decode(), re.DOTALL)
    return text(found.group(1)) if found else None


def failed_states(*merchants):
    """The states of the merchants' embeddings, by SKU."""
    return dict(ImageEmbedding.objects.filter(image__product__merchant__in=merchants)
                .values_list("image__product__sku", "state"))


@pytest.fixture
def failed(acme, rival, media):
    """One failed embedding for each of Acme (A-1) and Rival (R-1)."""
    model = indexing.register_model()
    for merchant, sku in ((acme, "A-1"), (rival, "R-1")):
        ProductImageFactory(product=ProductFactory(merchant=merchant, sku=sku), data=png((200, 0, 0)))
    indexing.queue_missing(model)
    ImageEmbedding.objects.update(state="failed", error="cannot identify image file")
    return model


def opened_for(page):
    """The hidden ``merchant`` of the catalog page's "Embed again" form."""
    form = re.search(r'<form method="post" action="/merchant/embed-again/">(.*?)</form>', page, re.DOTALL)
    field = re.search(r'<input type="hidden" name="merchant" value="([^"]*)">', form.group(1)) if form else None
    return field.group(1) if field else None


# --- 1. "Embed again" honours the merchant its form was opened for ------------------------------------------

def test_embed_again_from_a_page_opened_for_another_merchant_is_a_409(acme, rival, staff, client, failed):
    client.force_login(staff)
    client.post("/merchant/act-for/", {"merchant": acme.pk})
    form_for = opened_for(client.get("/merchant/").content.decode())
    assert form_for == str(acme.pk)
    client.post("/merchant/act-for/", {"merchant": rival.pk})  # another tab
    response = client.post(EMBED_AGAIN, {"merchant": form_for})
    assert (response.status_code, alert(response)) == (409, SWITCHED)
    assert "Rival: your catalog" in text(response)  # the catalog of the merchant acted for now, and its own form
    assert opened_for(response.content.decode()) == str(rival.pk)
    assert failed_states(acme, rival) == {"A-1": "failed", "R-1": "failed"}


def test_embed_again_sent_for_two_merchants_is_a_409(acme, rival, staff, client, failed):
    """Which was meant is unknown: the form was not opened for Rival alone."""
    client.force_login(staff)
    client.post("/merchant/act-for/", {"merchant": rival.pk})
    response = client.post(EMBED_AGAIN, {"merchant": [str(rival.pk), str(acme.pk)]})
    assert (response.status_code, alert(response)) == (409, SWITCHED)
    assert failed_states(acme, rival) == {"A-1": "failed", "R-1": "failed"}


@pytest.mark.parametrize("sent", [True, False], ids=["for the merchant acted for", "without the field"])
def test_embed_again_for_the_merchant_acted_for_queues_its_images(acme, rival, staff, client, failed, sent):
    """Sent for the merchant acted for, as before; so is a form without the field (a script, an earlier page)."""
    client.force_login(staff)
    client.post("/merchant/act-for/", {"merchant": rival.pk})
    response = client.post(EMBED_AGAIN, {"merchant": str(rival.pk)} if sent else {})
    assert (response.status_code, response["Location"]) == (302, "/merchant/")
    assert failed_states(acme, rival) == {"A-1": "failed", "R-1": "pending"}


def test_a_merchant_sends_its_own_key(acme, client, failed):
    client.force_login(acme.user)
    assert opened_for(client.get("/merchant/").content.decode()) == str(acme.pk)
    assert client.post(EMBED_AGAIN, {"merchant": str(acme.pk)}).status_code == 302
    assert failed_states(acme) == {"A-1": "pending"}


# --- 2. private pages and files are not kept by any cache ---------------------------------------------------

@pytest.fixture
def job(acme, client, media):
    """An ended upload of Acme with its three files: a manifest, an archive and rejected rows."""
    client.force_login(acme.user)
    job = run(post_upload(client, HEADER + row("A-1") + row("A-2", price="cheap")))
    assert (job.rows_accepted, job.rows_rejected, bool(job.rejected_rows)) == (1, 1, True)
    return job


def test_every_merchant_page_is_private_and_not_stored(acme, client, job):
    pages = ["/merchant/", "/merchant/imports/", f"/merchant/imports/{job.pk}/", "/merchant/upload/",
             "/merchant/template.csv"] + [f"/merchant/imports/{job.pk}/files/{name}/"
                                          for name in ("manifest", "archive", "rejected-rows")]
    answers = {url: (client.get(url).status_code, client.get(url).get("Cache-Control")) for url in pages}
    assert answers == {url: (200, PRIVATE) for url in pages}
    progress = client.get(f"/merchant/imports/{job.pk}/progress/")
    assert (progress.status_code, progress.get("Cache-Control")) == (200, NEVER_CACHED)


def test_the_pages_answers_of_refusal_and_redirects_are_not_stored(acme, rival, client, job):
    """A 404 of another merchant's job, an embed again (its redirect), a login asked: none is kept either."""
    client.force_login(acme.user)
    embedded = client.post(EMBED_AGAIN)
    assert (embedded.status_code, embedded.get("Cache-Control")) == (302, PRIVATE)
    client.force_login(rival.user)
    missing = [client.get(f"/merchant/imports/{job.pk}/"), client.get(f"/merchant/imports/{job.pk}/files/manifest/")]
    assert [(r.status_code, r.get("Cache-Control")) for r in missing] == [(404, PRIVATE)] * 2
    client.logout()
    asked = client.get("/merchant/imports/")
    assert (asked.status_code, asked.get("Cache-Control")) == (302, PRIVATE)


def test_a_staff_pages_of_choice_are_not_stored(staff, acme, client):
    client.force_login(staff)
    for response in (client.get("/merchant/act-for/"), client.post("/merchant/act-for/", {"merchant": acme.pk})):
        assert response.get("Cache-Control") == PRIVATE


def test_the_apis_job_answers_and_files_are_private_and_not_stored(acme, rival, job):
    client = api_client(acme.user)
    urls = ["/api/imports/", f"/api/imports/{job.pk}/"] + [f"/api/imports/{job.pk}/files/{name}/"
                                                           for name in ("manifest", "archive", "rejected-rows")]
    answers = {url: (client.get(url).status_code, client.get(url).get("Cache-Control")) for url in urls}
    assert answers == {url: (200, PRIVATE) for url in urls}
    other = api_client(rival.user)
    refused = [other.get(url) for url in urls[1:3]]
    assert [(r.status_code, r.get("Cache-Control")) for r in refused] == [(404, PRIVATE)] * 2
    assert ImportJob.objects.count() == 1

"""Hostile requests on what follows an upload: its job, its files and its progress (p2w_search/api/uploads.py,
p2w_search/merchant/), and a job whose merchant is gone.

Earlier rounds (test_access_matrix.py, test_hostile_merchant_pages.py, test_upload_lifecycle.py,
test_stored_injection.py, test_hostile_uploads*.py) cover another merchant's ids, odd ids and file
names, deleted files and download names. This round: staff acting for a merchant who ask for an
upload that is not that merchant's, and the import of an upload whose merchant was deleted while it
waited.
"""

import logging

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.test import Client

from p2w_search import tasks
from p2w_search.merchant.access import SESSION_KEY
from p2w_search.models import ImportJob
from p2w_search.uploads import importer
from tests.hostile import HEADER, row
from tests.test_hostile_merchant_pages import alert
from tests.test_merchant_pages import post_upload, run

NO_UPLOAD = "You have no upload with this id."
NO_JOB = 987654  # an id no upload has


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


@pytest.fixture
def jobs(acme, rival, client, media):
    """Acme's upload and Rival's, imported; each has all three files."""
    made = []
    for merchant, sku in ((acme, "A"), (rival, "R")):
        client.force_login(merchant.user)
        made.append(run(post_upload(client, HEADER + row(f"{sku}-1") + row(f"{sku}-2", price="cheap"))))
    client.logout()
    return made


@pytest.fixture
def clerk(acme, client, django_user_model):
    """Staff acting for Acme: they may add and change products (so act for merchants), not view import jobs."""
    user = django_user_model.objects.create_user("clerk", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["add_product", "change_product"]))
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = str(acme.pk)
    session.save()
    return user


PAGES = ("/merchant/imports/{}/", "/merchant/imports/{}/progress/", "/merchant/imports/{}/files/manifest/",
         "/merchant/imports/{}/files/nope/")


def test_staff_acting_for_a_merchant_are_told_an_upload_of_another_or_none_is_no_upload_of_theirs(
        acme, rival, jobs, clerk, client):
    """Both were a 403 saying "this account belongs to no merchant", on a page headed "For Acme": the words of a
    user who acts for no one, where the README promises the 404 that a merchant gets."""
    acme_job, rival_job = jobs
    for url in PAGES:
        answers = []
        for pk in (rival_job.pk, NO_JOB):
            for method in (client.get, client.head):
                response = method(url.format(pk))
                answers.append((response.status_code, response["Content-Type"]))
            page = client.get(url.format(pk))
            assert (page.status_code, alert(page)) == (404, NO_UPLOAD), url.format(pk)
            assert "R-2" not in page.content.decode() and "Rival" not in page.content.decode()
        assert answers == [(404, "text/html; charset=utf-8")] * 4, url
    own = client.get(f"/merchant/imports/{acme_job.pk}/files/manifest/")  # the control: Acme's own upload
    assert own.status_code == 200 and b"A-2" in b"".join(own.streaming_content)


def test_staff_acting_for_no_merchant_are_still_told_why_they_see_no_upload(acme, jobs, client, django_user_model):
    """Staff who may act for no one, and have no merchant, keep the API's 403 and its reason."""
    clerk = django_user_model.objects.create_user("nobody", is_staff=True)
    client.force_login(clerk)
    for pk in (jobs[0].pk, NO_JOB):
        response = client.get(f"/merchant/imports/{pk}/progress/")
        assert (response.status_code, alert(response)) == (
            403, "Only merchants upload catalogs; this account belongs to no merchant."), pk


@pytest.mark.parametrize("full_sync", [False, True])
def test_the_upload_of_a_merchant_deleted_while_it_waited_fails_saying_so_without_a_server_error(
        acme, rival, media, caplog, full_sync):
    """It failed as "an error on the server ... try again", with a traceback logged as an error and the Celery task
    failed: nothing the merchant (or the shop's staff) could do would make it pass."""
    job = importer.create_job(owner=rival.user, merchant_key=str(rival.pk), send=False, values={
        "manifest": ContentFile((HEADER + row("R-1")).encode(), name="catalog.csv"), "policy": "skip",
        "full_sync": full_sync})
    rival.delete()  # its jobs stay, under a key no merchant has
    with caplog.at_level(logging.WARNING):
        result = tasks.run_import.apply(args=(job.pk,))
    assert (result.state, result.result) == ("SUCCESS", "failed")
    job.refresh_from_db()
    assert (job.state, job.message, job.rows_accepted) == (
        ImportJob.State.FAILED, importer.MERCHANT_GONE, 0)
    assert job.ended_at is not None  # so the retention deletes its files
    assert importer.MERCHANT_GONE == ("The import did not run: the merchant of this upload no longer exists; "
                                      "nothing was imported.")
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == [
        f"import {job.pk} did not run: its merchant {job.merchant_key!r} no longer exists"]


@pytest.mark.parametrize("query, field", [("page=1&page=2", "page"), ("page_size=1&page_size=50", "page_size")])
def test_a_page_of_the_uploads_list_given_twice_is_400_naming_it(acme, client, jobs, query, field):
    """``/api/imports/?page=1&page=2`` answered page 2 without a word (QueryDict keeps the last); the searches and the
    product API already refused it."""
    client.force_login(acme.user)
    response = client.get(f"/api/imports/?{query}")
    assert (response.status_code, response.json()) == (400, {field: [f"Give {field} once; it was given 2 times."]})
    assert client.get("/api/imports/?page=1").status_code == 200


def test_the_uploads_list_takes_a_page_size_as_the_other_lists_do(acme, client, jobs):
    """``page_size`` was no parameter of ``/api/imports/`` and was ignored without a word (twenty a page)."""
    client.force_login(acme.user)
    for _ in range(2):
        run(post_upload(client, HEADER + row("A-3")))
    page = client.get("/api/imports/?page_size=2").json()
    assert (page["count"], len(page["results"])) == (3, 2)
    refused = client.get("/api/imports/?page_size=101")
    assert (refused.status_code, refused.json()) == (400, {"page_size": ["Ensure this value is less than or equal "
                                                                          "to 100."]})

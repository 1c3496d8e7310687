"""A seventh round on catalog uploads: each test pins one problem that was found and fixed.

- A full sync of a file whose every row the check rejects imports no row: the import refuses it unless
  ``confirm_unlist`` is the exact count (it would only unlist). The check did not say so; the merchant learnt it
  from the job, after sending the images. Its answer now says it (``full_sync.accepts_no_row``, the refusal in the
  job's own words, and a sentence on the page). The page's upload refuses it when sent, as it refuses a sync over
  the share; it became a job that the import refused after the images were sent.
- ``POST /api/imports/`` gave an API client none of the warnings the page's check gives before the upload (SKUs a
  spreadsheet wrote in scientific notation, rows the import will reject). Its 202 now carries them as ``check``,
  in the page check's shape, from the same single read of the manifest.
"""

from p2w_search.models import ImportJob
from tests.factories import ProductFactory
from tests.hostile import HEADER, row
from tests.test_merchant_pages import UPLOAD, api_client, files, post_upload, run, text
from tests.test_merchant_round_6 import TAIL, check


def refusal(count):
    """The job's words for a full sync that accepted no row (importer.py), ``count`` products to unlist."""
    return (f"Full sync refused: it would unlist {count}, and no row of the file could be imported. Nothing was "
            f"changed. To do it on purpose, upload the file again with full_sync=true and confirm_unlist={count}.")


def no_row(unlisting, count):
    """The page's sentence for a full sync that imports no row."""
    return ("No row of this file can be imported (the reasons are below): a full sync of it adds or updates no "
            f"product{unlisting}, so it runs only when you confirm the number it unlists, {count}.")


DUPLICATES = ("The import will not take {n} rows of this file, for the reasons below; it imports the others (with "
              "“Reject the whole upload”, none). Correct them before you upload, or upload and download the failed "
              "rows from the upload's page to fix them there. Rows the import will not take Row Column Reason")


# --- 1. a full sync whose every row the check rejects --------------------------------------------------------

def listed(merchant, count):
    for n in range(1, count + 1):
        ProductFactory(merchant=merchant, sku=f"P-{n}")


# P-1 to P-4 each on two rows: every row is rejected, the four SKUs are spared, P-5 (one of five: not more than the
# 20% a sync may unlist unconfirmed) would be unlisted.
ALL_REJECTED = HEADER + "".join(row(f"P-{n}") * 2 for n in range(1, 5))
UNLISTS_P5 = " and only unlists the 1 above"


def test_the_check_says_a_full_sync_of_a_file_whose_rows_are_all_rejected_imports_none(acme, client, media):
    listed(acme, 5)
    client.force_login(acme.user)
    status, answer = check(client, ALL_REJECTED, full_sync="true")
    assert (status, answer["errors"], answer["products"], answer["rows"]["rejected"]) == (200, {}, 0, 8)
    assert answer["full_sync"] == {"unlist": 1, "listed": 5, "skus": ["P-5"], "refusal": refusal(1),
                                   "accepts_no_row": True}
    shown = text(answer["html"])
    assert shown.startswith(
        "A full sync of this file unlists 1 of your 5 listed products: P-5. " + no_row(UNLISTS_P5, 1)
        + f" {refusal(1)} On this page: keep “Full sync” ticked and type 1 in “Confirm unlisting”. "
        + DUPLICATES.format(n=8))
    assert 'data-check="no-row"' in answer["html"] and 'data-check="refusal"' in answer["html"]
    # The job says the same, word for word, once the images are sent (through the API, which queues it).
    job = run(ImportJob.objects.get(pk=api_client(acme.user).post(
        "/api/imports/", {**files(ALL_REJECTED), "full_sync": "true"}, format="multipart").json()["id"]))
    assert (job.state, job.message, job.rows_rejected) == (ImportJob.State.REJECTED, refusal(1), 8)


def test_the_upload_page_refuses_such_a_full_sync_when_sent_in_the_jobs_words(acme, client, media):
    """The page's submit refused a sync over the share before anything happened, but not one of a file whose rows
    are all rejected: that became a job, which the import refused after the images were sent."""
    listed(acme, 5)
    client.force_login(acme.user)
    refused = client.post(UPLOAD, {**files(ALL_REJECTED), "full_sync": "on"})
    assert (refused.status_code, ImportJob.objects.exists()) == (400, False)
    assert refusal(1) in text(refused) and "type 1 in “Confirm unlisting”" in text(refused)
    # A row whose SKU looks like the catalog's P-1 (a Cyrillic ER) is rejected too, as the check counts it: with
    # P-2 to P-5 on two rows each, the file unlists none and imports none.
    look_alike = client.post(UPLOAD, {**files(HEADER + "".join(row(f"P-{n}") * 2 for n in range(2, 6))
                                              + row("\u0420-1")), "full_sync": "on"})
    assert (look_alike.status_code, refusal(0) in text(look_alike), ImportJob.objects.exists()) == (400, True, False)
    job = run(post_upload(client, ALL_REJECTED, full_sync="on", confirm_unlist="1"))
    assert (job.state, job.products_unlisted) == (ImportJob.State.DONE, 1)


def test_confirmed_the_check_still_says_it_and_the_import_unlists(acme, client, media):
    listed(acme, 5)
    client.force_login(acme.user)
    status, answer = check(client, ALL_REJECTED, full_sync="true", confirm_unlist="1")
    assert (status, answer["full_sync"]["refusal"], answer["full_sync"]["accepts_no_row"]) == (200, None, True)
    assert text(answer["html"]).startswith(
        "A full sync of this file unlists 1 of your 5 listed products: P-5. " + no_row(UNLISTS_P5, 1)
        + " " + DUPLICATES.format(n=8))
    assert 'data-check="refusal"' not in answer["html"]
    job = run(post_upload(client, ALL_REJECTED, full_sync="true", confirm_unlist="1"))
    assert (job.state, job.rows_accepted, job.products_unlisted, job.unlisted_skus) == (
        ImportJob.State.DONE, 0, 1, ["P-5"])


def test_a_full_sync_that_would_unlist_none_still_needs_confirm_unlist_0(acme, client, media):
    """As the import: no row accepted and nothing to unlist is refused unless confirm_unlist=0."""
    client.force_login(acme.user)
    manifest = HEADER + row("A-1") + row("A-1")
    status, answer = check(client, manifest, full_sync="true")
    assert answer["full_sync"] == {"unlist": 0, "listed": 0, "skus": [], "refusal": refusal(0), "accepts_no_row": True}
    assert text(answer["html"]).startswith(
        "A full sync of this file unlists none of your 0 listed products. " + no_row("", 0) + f" {refusal(0)}")
    refused = client.post(UPLOAD, {**files(manifest), "full_sync": "on"})
    assert (refused.status_code, refusal(0) in text(refused)) == (400, True)
    assert check(client, manifest, full_sync="true", confirm_unlist="0")[1]["full_sync"]["refusal"] is None


def test_the_share_refusal_comes_first_as_in_the_import(acme, client, media):
    """Two of two listed products unlisted: over the 20% share, the import's first refusal, and the same confirmation
    lifts both."""
    listed(acme, 2)
    client.force_login(acme.user)
    manifest = HEADER + row("A-1") + row("A-1")
    full_sync = check(client, manifest, full_sync="true")[1]["full_sync"]
    assert full_sync["refusal"] == (
        "Full sync refused: it would unlist 2 of your 2 listed products, and more than the 20% a sync may unlist "
        "unconfirmed. Nothing was changed. To do it on purpose, upload the file again with full_sync=true and "
        "confirm_unlist=2.")
    assert full_sync["accepts_no_row"] is True
    assert check(client, manifest, full_sync="true", confirm_unlist="2")[1]["full_sync"]["refusal"] is None


def test_a_full_sync_with_a_row_to_import_is_answered_as_before(acme, client, media):
    listed(acme, 5)
    client.force_login(acme.user)
    status, answer = check(client, ALL_REJECTED + row("B-1"), full_sync="true")
    assert answer["full_sync"] == {"unlist": 1, "listed": 5, "skus": ["P-5"], "refusal": None,
                                   "accepts_no_row": False}
    assert 'data-check="no-row"' not in answer["html"]
    assert text(answer["html"]).startswith("A full sync of this file unlists 1 of your 5 listed products: P-5. "
                                           + DUPLICATES.format(n=8))


def test_an_update_whose_rows_are_all_rejected_has_no_full_sync_sentence(acme, client, media):
    client.force_login(acme.user)
    status, answer = check(client, HEADER + row("A-1") + row("A-1"))
    assert (status, answer["full_sync"]) == (200, None)
    assert 'data-check="no-row"' not in answer["html"] and TAIL not in text(answer["html"])


# --- 2. the API's upload answers with the check's findings ---------------------------------------------------

# Row 2's SKU looks like a number a spreadsheet wrote in scientific notation; row 4 names no SKU.
WARNED = HEADER + row("1.23457E+11") + row("OK-1") + row("")
WARNED_CHECK = {
    "products": 2,
    "rows": {"rejected": 1, "errors": [{"row": 4, "field": "sku", "reason": "This field may not be blank."}]},
    "scientific": {"count": 1, "skus": [{"row": 2, "sku": "1.23457E+11"}]},
}


def test_the_api_upload_answers_with_the_checks_findings(acme, client, media):
    api = api_client(acme.user)
    response = api.post("/api/imports/", files(WARNED), format="multipart")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["check"] == WARNED_CHECK
    # Beside it, the job as polled; and the page's check of the same file answers the same.
    assert {name: value for name, value in body.items() if name != "check"} == api.get(body["url"]).json()
    client.force_login(acme.user)
    page = check(client, WARNED)[1]
    assert {name: page[name] for name in WARNED_CHECK} == WARNED_CHECK
    # The import agrees: two rows imported, row 4 rejected for the reason the check gave.
    job = run(ImportJob.objects.get(pk=body["id"]))
    assert (job.state, job.rows_accepted, job.rows_rejected, job.errors) == (
        ImportJob.State.DONE, 2, 1, WARNED_CHECK["rows"]["errors"])


def test_a_clean_file_has_an_empty_check(acme, media):
    response = api_client(acme.user).post("/api/imports/", files(HEADER + row("A-1")), format="multipart")
    assert (response.status_code, response.json()["check"]) == (202, {
        "products": 1, "rows": {"rejected": 0, "errors": []}, "scientific": {"count": 0, "skus": []}})


def test_a_refused_upload_answers_its_errors_only(acme, media):
    response = api_client(acme.user).post("/api/imports/", files("sku,prize\n1.2E+11,1\n"), format="multipart")
    assert (response.status_code, response.json()) == (400, {"manifest": [
        "The manifest cannot be used: unknown column 'prize'; the columns are category, currency, description, error, "
        "images, in_stock, price, sku, title."]})
    assert not ImportJob.objects.exists()


def test_the_schema_documents_the_check(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]

    def resolved(node):
        """The schema a property names (``$ref``, or ``allOf`` of one beside its description)."""
        node = node["allOf"][0] if "allOf" in node else node
        return components[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node

    accepted = resolved(schema["paths"]["/api/imports/"]["post"]["responses"]["202"]["content"]["application/json"]
                        ["schema"])
    found = resolved(accepted["properties"]["check"])
    assert set(found["properties"]) == {"products", "rows", "scientific"}
    assert "scientific notation" in found["properties"]["scientific"]["description"]
    assert set(resolved(found["properties"]["rows"])["properties"]) == {"rejected", "errors"}
    assert set(resolved(found["properties"]["scientific"])["properties"]) == {"count", "skus"}
    # GET of one upload is the job alone.
    detail = resolved(schema["paths"]["/api/imports/{id}/"]["get"]["responses"]["200"]["content"]["application/json"]
                      ["schema"])
    assert "check" not in detail["properties"]

"""Django admin: the index page, its actions, and the image actions, through the test client."""

import pytest

from p2w_search import index, indexing
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from tests.factories import ProductImageFactory, png


@pytest.fixture
def indexed(db, media):
    images = [ProductImageFactory(data=png((40 * i, 90, 200))) for i in range(3)]
    broken = ProductImageFactory(data=b"not an image")
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return images, broken, model


def test_index_page_shows_counts_sizes_and_errors(admin_client, indexed):
    response = admin_client.get("/admin/p2w_search/embeddingmodel/index/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "4 product images in the index" in page
    assert "not a recognised image format" in page
    row = next(r for r in response.context["models"] if r["model"] == indexed[2])
    assert row["counts"] == {"total": 4, "pending": 0, "ready": 3, "failed": 1, "missing": 0}
    assert row["index_bytes"] > 0


def test_index_page_is_for_staff_only(client, indexed, django_user_model):
    django_user_model.objects.create_user("shopper", password="pw")
    client.login(username="shopper", password="pw")
    response = client.get("/admin/p2w_search/embeddingmodel/index/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_switch_is_refused_until_the_new_model_is_complete(admin_client, indexed):
    images, broken, old = indexed
    new = indexing.register_model("next")
    indexing.queue_missing(new)

    response = admin_client.post("/admin/p2w_search/embeddingmodel/index/", {"action": "switch", "model": new.pk},
                                 follow=True)
    assert "is not complete: 4 images pending" in response.content.decode()
    assert EmbeddingModel.objects.get(pk=old.pk).state == "serving"

    indexing.embed_pending(new.pk, list(new.embeddings.values_list("pk", flat=True)))
    admin_client.post("/admin/p2w_search/embeddingmodel/index/", {"action": "switch", "model": new.pk})
    assert EmbeddingModel.objects.get(pk=new.pk).state == "serving"
    assert EmbeddingModel.objects.get(pk=old.pk).state == "retired"


def test_start_sends_a_registration_task_to_the_bulk_queue(admin_client, indexed, monkeypatch, settings):
    sent = []
    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: sent.append((name, kw["kwargs"], kw["queue"])))
    admin_client.post("/admin/p2w_search/embeddingmodel/index/", {"action": "start", "alias": "next"})
    assert sent == [("p2w_search.tasks.start_model", {"alias": "next"}, settings.P2W_SEARCH["BULK_QUEUE"])]
    response = admin_client.post("/admin/p2w_search/embeddingmodel/index/", {"action": "start", "alias": "gpu"},
                                 follow=True)
    assert "There is no embedder alias &#x27;gpu&#x27;" in response.content.decode()


def test_start_on_the_serving_models_alias_does_not_promise_an_embedding(admin_client, indexed, monkeypatch):
    """It said "embedding the catalog beside the serving model"; the worker found the serving weights: nothing to do."""
    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: None)
    page = admin_client.post(INDEX, {"action": "start", "alias": "default"}, follow=True).content.decode()
    assert ("A worker is loading &#x27;default&#x27;, the serving model&#x27;s alias: with the serving model&#x27;s "
            "weights there is nothing to embed. New weights go under a new alias in "
            "P2W_SEARCH[&#x27;EMBEDDERS&#x27;], started here once added.") in page
    assert "embedding the catalog beside the serving model" not in page
    page = admin_client.post(INDEX, {"action": "start", "alias": "next"}, follow=True).content.decode()
    assert "A worker is registering &#x27;next&#x27; and embedding the catalog beside the serving model." in page


def test_product_actions_retry_failed_and_remove_from_index(admin_client, indexed, django_capture_on_commit_callbacks):
    images, broken, model = indexed
    with django_capture_on_commit_callbacks() as sent:
        admin_client.post("/admin/catalog/product/",
                          {"action": "retry_failed", "_selected_action": [broken.product_id]})
    assert ImageEmbedding.objects.get(image=broken).state == "pending" and len(sent) == 1

    admin_client.post("/admin/catalog/product/", {"action": "remove_from_index",
                                                  "_selected_action": [images[0].product_id]})
    images[0].refresh_from_db()
    assert not images[0].in_index and not ImageEmbedding.objects.filter(image=images[0]).exists()
    assert indexing.queue_missing(model) == 0  # the retried one is queued already; the removed image stays out
    assert not ImageEmbedding.objects.filter(image=images[0]).exists()


def test_product_list_shows_thumbnails_and_filters_by_state(admin_client, indexed):
    images, broken, model = indexed
    page = admin_client.get("/admin/catalog/product/?embedding=failed")
    assert page.status_code == 200
    assert list(page.context["cl"].queryset) == [broken.product]
    assert '<img src="/media/p2w/images/' in admin_client.get("/admin/catalog/product/").content.decode()
    assert admin_client.get("/admin/catalog/product/?q=" + broken.product.sku).context["cl"].result_count == 1
    page = admin_client.get("/admin/catalog/product/", {"embedding_model": model.pk})
    assert page.context["cl"].result_count == 4


def test_the_product_filters_find_products_by_a_subquery_not_a_distinct_join(admin_client, indexed):
    """A product with two failed images is listed once, and the list's SQL has no DISTINCT: it compared every
    column of every product (about 700 ms a page at 100,000 products, bench/pages.py)."""
    images, broken, model = indexed
    second = ProductImageFactory(product=broken.product, data=png((9, 9, 9)))
    ImageEmbedding.objects.update_or_create(image=second, model=model,
                                            defaults={"state": "failed", "error": "unreadable"})
    page = admin_client.get("/admin/catalog/product/?embedding=failed")
    assert list(page.context["cl"].queryset) == [broken.product] and page.context["cl"].result_count == 1
    assert "DISTINCT" not in str(page.context["cl"].queryset.query)


@pytest.mark.parametrize("query", [{"embedding_model": "abc"}, {"embedding_model": "²"}, {"embedding_model": "9" * 300},
                                   {"embedding": "\x00"}, {"embedding": "done"}])
def test_a_product_filter_value_that_is_none_of_its_choices_is_an_incorrect_lookup(admin_client, indexed, query):
    response = admin_client.get("/admin/catalog/product/", query)
    assert (response.status_code, response["Location"]) == (302, "/admin/catalog/product/?e=1")


def test_import_jobs_are_listed_with_progress_and_row_errors(admin_client, db):
    from p2w_search.models import ImportJob

    job = ImportJob.objects.create(merchant_key="1", state="done", rows_total=3, rows_accepted=2, rows_rejected=1,
                                   errors=[{"row": 3, "field": "price", "reason": "A valid number is required."}])
    listing = admin_client.get("/admin/p2w_search/importjob/")
    assert listing.status_code == 200 and "0 / 0" in listing.content.decode()
    detail = admin_client.get(f"/admin/p2w_search/importjob/{job.pk}/change/").content.decode()
    assert "row 3: <strong>price</strong> A valid number is required." in detail


# The product image pages (Product images) and their actions, as staff use them.

IMAGES = "/admin/p2w_search/productimage/"
INDEX = "/admin/p2w_search/embeddingmodel/index/"


@pytest.fixture
def sent_tasks(monkeypatch):
    """Tasks the admin sends, as (name, args, queue), recorded instead of published."""
    from celery import current_app

    sent = []
    monkeypatch.setattr(current_app, "send_task",
                        lambda name, args=(), queue=None, **kw: sent.append((name, list(args), queue)))
    return sent


def test_image_list_shows_thumbnails_states_and_filters(admin_client, indexed):
    images, broken, model = indexed
    page = admin_client.get(IMAGES)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<img src="/media/p2w/images/') == 4  # one thumbnail per image
    assert page.context["cl"].result_count == 4
    assert list(page.context["cl"].queryset.order_by("pk")) == [*images, broken]
    assert f"<td class=\"field-states\">{model.pk}: failed</td>" in html
    assert html.count(f"{model.pk}: ready") == 3

    failed = admin_client.get(IMAGES, {"embeddings__state": "failed"})
    assert list(failed.context["cl"].queryset) == [broken]
    found = admin_client.get(IMAGES, {"q": images[1].sha256})
    assert list(found.context["cl"].queryset) == [images[1]]


def test_image_page_shows_each_models_embedding_and_its_error(admin_client, indexed):
    images, broken, model = indexed
    page = admin_client.get(f"{IMAGES}{broken.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert broken.sha256 in html and "not a recognised image format" in html
    inline = page.context["inline_admin_formsets"][0]
    assert [(form.instance.model_id, form.instance.state) for form in inline.formset.initial_forms] == [
        (model.pk, "failed")]


def test_embed_again_queues_the_selected_images(admin_client, indexed, sent_tasks, settings,
                                                django_capture_on_commit_callbacks):
    images, broken, model = indexed
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(IMAGES, {"action": "reembed", "_selected_action": [images[0].pk, images[2].pk]},
                                     follow=True)
    assert "Queued 2 images." in response.content.decode()
    rows = ImageEmbedding.objects.filter(image__in=[images[0], images[2]])
    assert sorted(rows.values_list("state", flat=True)) == ["pending", "pending"]
    assert ImageEmbedding.objects.get(image=images[1]).state == "ready"  # not selected: left alone
    assert sent_tasks == [("p2w_search.tasks.embed_batch", [model.pk, sorted(rows.values_list("pk", flat=True))],
                           settings.P2W_SEARCH["BULK_QUEUE"])]


def test_retry_failed_queues_only_the_failed_ones(admin_client, indexed, sent_tasks,
                                                  django_capture_on_commit_callbacks):
    images, broken, model = indexed
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(IMAGES, {"action": "retry_failed",
                                              "_selected_action": [images[0].pk, broken.pk]}, follow=True)
    assert "Queued 1 failed embedding again." in response.content.decode()
    row = ImageEmbedding.objects.get(image=broken)
    assert (row.state, row.error, row.attempts) == ("pending", "", 0)
    assert ImageEmbedding.objects.get(image=images[0]).state == "ready"
    assert [(name, args) for name, args, _ in sent_tasks] == [("p2w_search.tasks.embed_batch", [model.pk, [row.pk]])]


def test_remove_from_index_drops_the_vectors_and_keeps_the_image_out(admin_client, indexed, sent_tasks):
    images, broken, model = indexed
    response = admin_client.post(IMAGES, {"action": "remove_from_index", "_selected_action": [images[1].pk]},
                                 follow=True)
    assert "Removed 1 vector; these images are no longer searched." in response.content.decode()
    images[1].refresh_from_db()
    assert not images[1].in_index and not ImageEmbedding.objects.filter(image=images[1]).exists()
    assert indexing.queue_missing(model) == 0 and sent_tasks == []  # nothing brings it back
    hits = index.nearest_products(model, [1.0] + [0.0] * 31, k=10)
    assert {hit.image_id for hit in hits} == {images[0].pk, images[2].pk}


def test_embedding_rows_list_filters_by_state_and_cannot_be_added(admin_client, indexed):
    images, broken, model = indexed
    listing = admin_client.get("/admin/p2w_search/imageembedding/", {"state": "failed"})
    assert listing.status_code == 200
    assert [row.image_id for row in listing.context["cl"].queryset] == [broken.pk]
    assert "not a recognised image format" in listing.content.decode()
    assert admin_client.get("/admin/p2w_search/imageembedding/add/").status_code == 403


@pytest.fixture
def staff(client, django_user_model):
    """Log ``client`` in as staff with the given permissions ("app_label.codename")."""
    from django.contrib.auth.models import Permission

    def login(*perms):
        user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        client.login(username="staff", password="pw")
        return client
    return login


@pytest.mark.parametrize("page, perms", [
    (IMAGES, ["p2w_search.view_productimage"]),
    ("/admin/catalog/product/", ["catalog.view_product", "catalog.change_product"]),
])
def test_staff_who_may_not_change_product_images_cannot_change_the_index(staff, indexed, sent_tasks, page, perms):
    images, broken, model = indexed
    client = staff(*perms)
    listing = client.get(page)
    assert listing.status_code == 200
    form = listing.context["action_form"]  # None when no action is left to offer
    offered = {name for name, _ in form.fields["action"].choices} if form else set()
    assert not offered & {"reembed", "retry_failed", "remove_from_index"}
    selected = [image.pk if page == IMAGES else image.product_id for image in (*images, broken)]
    for action in ("remove_from_index", "reembed", "retry_failed"):
        assert client.post(page, {"action": action, "_selected_action": selected}).status_code == 200  # the list again
    assert ImageEmbedding.objects.filter(model=model, state="ready").count() == 3
    assert ImageEmbedding.objects.get(image=broken).state == "failed"
    assert all(image.in_index for image in ProductImage.objects.all()) and sent_tasks == []


def test_the_index_page_needs_the_permission_to_view_embedding_models(staff, indexed, sent_tasks):
    client = staff("p2w_search.view_productimage")
    assert client.get(INDEX).status_code == 403
    assert client.post(INDEX, {"action": "start", "alias": "default"}).status_code == 403
    assert sent_tasks == []


def test_staff_who_may_only_view_embedding_models_read_the_index_page_but_change_nothing(staff, indexed, sent_tasks):
    images, broken, model = indexed
    client = staff("p2w_search.view_embeddingmodel")
    page = client.get(INDEX)
    assert page.status_code == 200 and page.context["can_change"] is False
    assert "not a recognised image format" in page.content.decode()
    response = client.post(INDEX, {"action": "start", "alias": "default"}, follow=True)
    assert "You may not change the index." in response.content.decode()
    assert sent_tasks == []


def test_staff_who_may_change_product_images_can_remove_one_from_the_index(staff, indexed):
    images, broken, model = indexed
    client = staff("p2w_search.view_productimage", "p2w_search.change_productimage")
    response = client.post(IMAGES, {"action": "remove_from_index", "_selected_action": [images[1].pk]}, follow=True)
    assert "Removed 1 vector; these images are no longer searched." in response.content.decode()
    assert ImageEmbedding.objects.filter(model=model, state="ready").count() == 2


@pytest.mark.parametrize("key", ["abc", "²", "1.5", "", "9" * 5000])
def test_switch_to_a_model_that_is_not_a_number_says_there_is_none(admin_client, indexed, key):
    response = admin_client.post("/admin/p2w_search/embeddingmodel/index/", {"action": "switch", "model": key},
                                 follow=True)
    assert response.status_code == 200 and "There is no such model." in response.content.decode()
    assert EmbeddingModel.objects.get(pk=indexed[2].pk).state == "serving"

"""The admin's index actions on "select all" of a large catalog (bench/admin_actions.py measures 70,000 products).

No timing: what a request reads into Python (rows as model objects), the tasks it sends, and the message it
gives, on a few hundred rows.
"""

import pytest
from django.db.models.signals import post_init

from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from shop_demo.catalog.models import Product
from tests.factories import MerchantFactory, ProductFactory

PRODUCTS, IMAGES = "/admin/catalog/product/", "/admin/p2w_search/productimage/"
COUNT = 300
READY, FAILED = ImageEmbedding.State.READY, ImageEmbedding.State.FAILED


@pytest.fixture
def catalog(db):
    """COUNT products, one image each (rows only): every 10th image out of the index, every 5th embedding failed,
    every 20th product unlisted (its images are in the index all the same: README, "Index the existing catalog")."""
    model = EmbeddingModel.objects.create(alias="default", architecture="ViT-B-32", weights="test", dimensions=4,
                                          state=EmbeddingModel.State.SERVING)
    merchant = MerchantFactory()
    products = Product.objects.bulk_create(ProductFactory.build(merchant=merchant, listed=n % 20 != 5)
                                           for n in range(COUNT))
    images = ProductImage.objects.bulk_create(
        ProductImage(product=product, file=f"p2w/images/{product.sku}.png", sha256="0" * 64, in_index=n % 10 != 0)
        for n, product in enumerate(products))
    ImageEmbedding.objects.bulk_create(
        ImageEmbedding(image=image, model=model, state=FAILED if n % 5 == 1 else READY,
                       vector=None if n % 5 == 1 else [0.5] * 4, norm=None if n % 5 == 1 else 1.0)
        for n, image in enumerate(images) if image.in_index)
    return model, images


@pytest.fixture
def sent_tasks(monkeypatch):
    from celery import current_app

    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args=(), **kw: sent.append((name, list(args))))
    return sent


@pytest.fixture
def loaded():
    """How many ProductImage and ImageEmbedding rows were made model objects (post_init) while it counted."""
    counted = []

    def count(sender, **kwargs):
        counted.append(sender)

    for sender in (ProductImage, ImageEmbedding):
        post_init.connect(count, sender=sender, weak=False, dispatch_uid=f"test-count-{sender.__name__}")
    yield counted
    for sender in (ProductImage, ImageEmbedding):
        post_init.disconnect(sender=sender, dispatch_uid=f"test-count-{sender.__name__}")


def select_all(client, page, action):
    """Django admin's "select all N" and the action: the page's ids, and ``select_across``."""
    from django.contrib.messages import get_messages

    model = Product if page == PRODUCTS else ProductImage
    shown = list(model.objects.order_by("-pk").values_list("pk", flat=True)[:100])
    response = client.post(page, {"action": action, "select_across": "1", "index": "0", "_selected_action": shown})
    assert response.status_code == 302
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("page", [PRODUCTS, IMAGES])
@pytest.mark.parametrize("action", ["reembed", "retry_failed", "remove_from_index"])
def test_select_all_changes_the_index_by_sets_not_row_objects(admin_client, catalog, sent_tasks, loaded, page, action,
                                                              django_capture_on_commit_callbacks,
                                                              django_assert_max_num_queries):
    """Each selected image was read as a model object and each embedding row built as one (bulk_create), with an
    IN list of every id: 25 s for 70,000 products, close to a web server's 30 s timeout. Now ids only, and arrays."""
    model, images = catalog
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(40):
        select_all(admin_client, page, action)
    assert loaded == []
    in_index = [image for image in images if image.in_index]
    if action == "reembed":
        assert ImageEmbedding.objects.filter(state="pending").count() == len(in_index) == 270
        assert len(sent_tasks) == -(-270 // 32)  # TASK_BATCH_SIZE rows a task, sent after commit
        assert sorted(pk for _, (_, ids) in sent_tasks for pk in ids) == sorted(
            ImageEmbedding.objects.values_list("pk", flat=True))
    elif action == "retry_failed":
        assert ImageEmbedding.objects.filter(state="pending").count() == 60 and len(sent_tasks) == 2
    else:
        assert not ProductImage.objects.filter(in_index=True).exists() and not ImageEmbedding.objects.exists()


@pytest.mark.parametrize("page", [PRODUCTS, IMAGES])
def test_each_message_counts_what_was_done(admin_client, catalog, sent_tasks, page,
                                           django_capture_on_commit_callbacks):
    """Embed again said "Queued 300 images." when 30 were out of the index and left out; Remove counted the failed
    rows, which have no vector, as vectors removed. An unlisted product's images are queued like the others."""
    model, images = catalog
    unlisted = ProductImage.objects.filter(product__listed=False, in_index=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert select_all(admin_client, page, "retry_failed")[-1:] == [
            "Queued 60 failed embeddings again. 30 of the selected images are out of the search index and were "
            "left out."]
        assert select_all(admin_client, page, "reembed")[-1:] == [
            "Queued 270 images. 30 of the selected images are out of the search index and were left out."]
    assert set(ImageEmbedding.objects.filter(image__in=unlisted).values_list("state", flat=True)) == {"pending"}
    ImageEmbedding.objects.filter(state="pending").update(state=READY, vector=[0.5] * 4, norm=1.0)
    ImageEmbedding.objects.filter(image__in=images[:50]).update(state=FAILED, vector=None, norm=None)
    assert select_all(admin_client, page, "remove_from_index")[-1:] == [
        "Removed 225 vectors; these images are no longer searched. 270 images were taken out of the search index. "
        "30 of the selected images are out of the search index and were out of it already."]
    assert not ProductImage.objects.filter(in_index=True).exists() and not ImageEmbedding.objects.exists()

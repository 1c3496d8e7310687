"""The admin as a writer beside the others: imports, the product API, embedding workers, other staff.

Writers are interleaved as in test_concurrent_writes.py: one stopped inside its transaction, on a
thread of its own, while another runs into it.
"""

from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db.models.signals import post_delete, post_save
from django.test import Client

from p2w_search import locks
from p2w_search.admin_writes import BoundedWrites
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from p2w_search.uploads import importer
from shop_demo.catalog.models import Product
from tests.factories import ProductFactory, ProductImageFactory
from tests.test_concurrent_writes import (  # noqa: F401 (fixtures)
    BLUE,
    HEADER,
    RED,
    Writer,
    api,
    merchant,
    sha256,
    stop_at,
    upload,
    wait_until_a_writer_waits_for_a_lock,
)

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTS, IMAGES = "/admin/catalog/product/", "/admin/p2w_search/productimage/"
INDEX = "/admin/p2w_search/embeddingmodel/index/"


class FormData(HTMLParser):
    """What a browser sends of the page's change form: its inputs, checked boxes, chosen options and text areas."""

    def __init__(self, html):
        super().__init__()
        self.data, self.select, self.textarea = {}, None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "file", "checkbox"):
            self.data[name] = attrs.get("value") or ""
        elif tag == "input" and name and "checked" in attrs:
            self.data[name] = attrs.get("value") or "on"
        elif tag == "select":
            self.select = name
        elif tag == "option" and self.select and "selected" in attrs:
            self.data[self.select] = attrs["value"]
        elif tag == "textarea":
            self.textarea = name
            self.data[name] = ""

    def handle_data(self, data):
        if self.textarea:
            self.data[self.textarea] += data.lstrip("\n")

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None


def change_form(client, url):
    page = client.get(url)
    assert page.status_code == 200
    data = FormData(page.content.decode()).data
    data.pop("csrfmiddlewaretoken", None)
    return data


def said(response):
    """The messages the admin gave with ``response`` (and any its client had not been shown yet)."""
    return [str(message) for message in get_messages(response.wsgi_request)]


def staff_client():
    """Another staff member, signed in beside ``admin_client``."""
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    return client


def embedding_model(name, state):
    """A model as a worker registers it, without loading its weights: what the admin's index actions read."""
    return EmbeddingModel.objects.create(alias=name, architecture=name, weights="w", dimensions=32, state=state)


# A change form opened before an import, saved after it

def test_a_change_form_opened_before_an_import_writes_only_what_the_staff_member_changed(
        admin_client, merchant, api, media):  # noqa: F811
    """The form wrote back every value it showed: the price the import had set went back to the old one."""
    tee = ProductFactory(merchant=merchant, sku="TEE", title="Tee", description="Soft", price=Decimal("19.99"))
    data = change_form(admin_client, f"{PRODUCTS}{tee.pk}/change/")
    job = upload(api, HEADER + "TEE,Tee,Softer,t-shirt,5,red.png\n", {"red.png": RED})
    assert importer.run_import(job).state == "done"

    answer = admin_client.post(f"{PRODUCTS}{tee.pk}/change/", {**data, "title": "Tee by staff"})
    assert answer.status_code == 302, answer.context and answer.context["errors"]
    assert Product.objects.values_list("title", "description", "price").get(pk=tee.pk) == (
        "Tee by staff", "Softer", Decimal("5.00"))
    assert list(tee.p2w_images.values_list("sha256", flat=True)) == [sha256(RED)]  # the import's image stays


# Admin writes while an import holds the rows

def test_admin_writes_of_rows_an_import_is_writing_are_refused_in_words_at_once(
        admin_client, merchant, api, media, monkeypatch):  # noqa: F811
    """They waited for the import to commit, minutes for a large catalog: the page hung so long."""
    tee = ProductFactory(merchant=merchant, sku="TEE", title="Tee")
    image = ProductImageFactory(product=tee, data=RED)
    form = change_form(admin_client, f"{PRODUCTS}{tee.pk}/change/")
    monkeypatch.setattr(importer, "CHUNK_ROWS", 1)  # each row written before the next one is counted
    monkeypatch.setattr(locks, "LOCK_WAIT_MS", 200)
    job = upload(api, HEADER + "TEE,Tee renamed,,t-shirt,5,blue.png\nNEW,New,,mug,7,red.png\n",
                 {"red.png": RED, "blue.png": BLUE})
    answers = []

    def write_once_both_rows_are_written(done, total):
        if done == total:
            for path, data in ((f"{PRODUCTS}{tee.pk}/change/", {**form, "title": "Mine"}),
                               (f"{PRODUCTS}{tee.pk}/delete/", {"post": "yes"}),
                               (PRODUCTS, {"action": "delete_selected", "_selected_action": [tee.pk], "post": "yes"}),
                               (PRODUCTS, {"action": "remove_from_index", "_selected_action": [tee.pk]}),
                               (IMAGES, {"action": "reembed", "_selected_action": [image.pk]}),
                               (f"{IMAGES}{image.pk}/delete/", {"post": "yes"})):
                answers.append((path, Writer(lambda p=path, d=data: staff_client().post(p, d)).result(timeout=10)))

    assert importer.run_import(job, progress=write_once_both_rows_are_written).state == "done"
    assert [(answer.status_code, answer["Location"], said(answer)) for path, answer in answers] == [
        (302, path, [BoundedWrites.busy_message]) for path, _ in answers]
    assert list(Product.objects.values_list("sku", "title")) == [("TEE", "Tee renamed"), ("NEW", "New")]
    assert list(ProductImage.objects.filter(product=tee).values_list("pk", "sha256", "in_index")) == [
        (image.pk, sha256(BLUE), True)]


# The index actions beside other staff and writers

def test_two_staff_members_switching_to_two_models_at_once_leave_the_later_one_serving(
        admin_client, media, stop_at):  # noqa: F811
    """Each retired the model that served when it looked; the second broke the one-serving-model constraint: a 500."""
    first, second, third = (embedding_model(name, state) for name, state in (
        ("first", "serving"), ("second", "building"), ("third", "building")))
    stop = stop_at(post_save, EmbeddingModel)
    to_second = Writer(lambda: admin_client.post(INDEX, {"action": "switch", "model": second.pk}))
    stop.wait()  # the first one retired, the second one serving: not committed
    to_third = Writer(lambda: staff_client().post(INDEX, {"action": "switch", "model": third.pk}))
    wait_until_a_writer_waits_for_a_lock()
    stop.go()

    assert said(to_second.result()) == [f"{second} now serves searches."]
    assert said(to_third.result()) == [f"{third} now serves searches."]
    assert dict(EmbeddingModel.objects.values_list("pk", "state")) == {
        first.pk: "retired", second.pk: "retired", third.pk: "serving"}


def test_a_switch_to_a_model_deleted_at_that_moment_is_refused_in_words(admin_client, media, stop_at):  # noqa: F811
    """The switch saved the deleted row's state: "Save with update_fields did not affect any rows", a 500."""
    embedding_model("serving", "serving")
    old = embedding_model("old", "retired")
    stop = stop_at(post_delete, EmbeddingModel)
    delete = Writer(lambda: staff_client().post(f"{MODELS}{old.pk}/delete/", {"post": "yes"}))
    stop.wait()  # deleted, not committed: the switch still finds the row and waits for its lock
    switch = Writer(lambda: admin_client.post(INDEX, {"action": "switch", "model": old.pk}))
    wait_until_a_writer_waits_for_a_lock()
    stop.go()

    assert delete.result().status_code == 302
    answer = switch.result()
    assert (answer.status_code, said(answer)) == (302, [f"{old.key} was deleted meanwhile; nothing was switched."])
    assert dict(EmbeddingModel.objects.values_list("alias", "state")) == {"serving": "serving"}


MODELS = "/admin/p2w_search/embeddingmodel/"


def test_the_serving_model_cannot_be_deleted_from_its_page_or_the_list(admin_client, media):
    """Deleting it deleted every vector of the catalog: every search failed until all was embedded again."""
    serving, old = embedding_model("serving", "serving"), embedding_model("old", "retired")
    refusal = (f"Nothing was deleted: {serving} serves searches, and deleting it would delete every vector of the "
               "catalog, so that every search would fail until the whole catalog was embedded again. Switch another "
               "model to serving on the index page first.")

    page = admin_client.get(f"{MODELS}{serving.pk}/change/")
    assert f"{MODELS}{serving.pk}/delete/" not in page.content.decode()  # no Delete link
    for ask in (lambda path: staff_client().get(path), lambda path: staff_client().post(path, {"post": "yes"})):
        answer = ask(f"{MODELS}{serving.pk}/delete/")
        assert (answer.status_code, answer["Location"], said(answer)) == (
            302, f"{MODELS}{serving.pk}/change/", [refusal])
    answer = staff_client().post(MODELS, {"action": "delete_selected", "_selected_action": [serving.pk, old.pk],
                                          "post": "yes"})
    assert (answer.status_code, said(answer)) == (302, [refusal])
    assert set(EmbeddingModel.objects.values_list("alias", flat=True)) == {"serving", "old"}

    answer = staff_client().post(MODELS, {"action": "delete_selected", "_selected_action": [old.pk], "post": "yes"})
    assert said(answer) == ["Successfully deleted 1 embedding model."]
    assert list(EmbeddingModel.objects.values_list("alias", flat=True)) == ["serving"]


def test_a_model_switched_to_serving_while_its_delete_was_confirmed_is_kept(admin_client, media, stop_at):  # noqa: F811
    """The delete page was opened while it was building; the switch committed before the delete took the row."""
    embedding_model("serving", "serving")
    building = embedding_model("building", "building")
    stop = stop_at(post_save, EmbeddingModel)
    switch = Writer(lambda: staff_client().post(INDEX, {"action": "switch", "model": building.pk}))
    stop.wait()  # the switch holds the models' rows, building not serving yet as the admin reads it
    delete = Writer(lambda: admin_client.post(f"{MODELS}{building.pk}/delete/", {"post": "yes"}))
    wait_until_a_writer_waits_for_a_lock()
    stop.go()

    assert said(switch.result()) == [f"{building} now serves searches."]
    answer = delete.result()
    assert (answer.status_code, answer["Location"]) == (302, MODELS)
    assert said(answer)[0].startswith(f"Nothing was deleted: {building} serves searches")
    assert dict(EmbeddingModel.objects.values_list("alias", "state")) == {"serving": "retired", "building": "serving"}


def test_embed_again_of_an_image_deleted_meanwhile_leaves_it_out(admin_client, media, stop_at):  # noqa: F811
    """The action added an embedding row for the image being deleted: the foreign key failed its commit, a 500."""
    model = embedding_model("serving", "serving")
    image, kept = ProductImageFactory(), ProductImageFactory()
    stop = stop_at(post_delete, ProductImage)
    delete = Writer(lambda: admin_client.post(f"{IMAGES}{image.pk}/delete/", {"post": "yes"}))
    stop.wait()  # deleted, not committed
    again = Writer(lambda: staff_client().post(IMAGES, {"action": "reembed", "_selected_action": [image.pk, kept.pk]}))
    wait_until_a_writer_waits_for_a_lock()
    stop.go()

    assert delete.result().status_code == 302
    assert said(again.result()) == ["Queued 1 image."]
    assert list(ImageEmbedding.objects.values_list("image_id", "model_id", "state")) == [(kept.pk, model.pk, "pending")]


# Hostile selections

@pytest.mark.parametrize("path, action, noun", [
    (PRODUCTS, "delete_selected", "product"), (PRODUCTS, "reembed", "product"),
    (IMAGES, "remove_from_index", "product image"), ("/admin/p2w_search/imageembedding/", "delete_selected",
                                                     "image embedding"),
    ("/admin/p2w_search/importjob/", "delete_selected", "import job"),
    ("/admin/p2w_search/embeddingmodel/", "delete_selected", "embedding model"),
    ("/admin/catalog/merchant/", "delete_selected", "merchant")])
def test_a_selection_with_an_id_that_is_not_a_number_is_refused_in_words(admin_client, media, path, action, noun):
    """Django's action made a filter of it: ValueError, a 500."""
    image = ProductImageFactory()
    answer = admin_client.post(path, {"action": action, "_selected_action": [image.pk, "1\x00"], "post": "yes"})
    assert (answer.status_code, answer["Location"], said(answer)) == (
        302, path, [f"The selection holds an id that is no {noun}'s: nothing was changed."])
    assert (ProductImage.objects.get().in_index, Product.objects.count()) == (True, 1)


@pytest.mark.parametrize("fails", [False, True])
def test_a_bounded_wait_inside_the_callers_transaction_gives_its_wait_back(fails):
    """ATOMIC_REQUESTS (or any caller's transaction): the bound is the block's, not the rest of the transaction's."""
    from contextlib import nullcontext

    from django.db import connection, transaction

    def lock_timeout():
        with connection.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            return cursor.fetchone()[0]

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '250ms'")
        with pytest.raises(ZeroDivisionError) if fails else nullcontext():
            with locks.bounded_lock_wait():
                assert lock_timeout() == f"{locks.LOCK_WAIT_MS // 1000}s"
                if fails:
                    1 / 0
        assert lock_timeout() == "250ms"

"""A search whose model is switched, or switched and deleted, between its steps (read the serving model, make the
query vector, rank the products).

A search ranks with the vectors of the one model it began with, never two. A model deleted under it ("switch
first, then delete the old one") took its vectors with it, and the ranking found nothing: an empty page, which says
"nothing matches", false. It is the 503 of a model deleted before the encoding, in the same words.
"""

import re

import pytest
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from p2w_search import encoding, index, indexing, search
from p2w_search.models import EmbeddingModel, ImageEmbedding
from tests.factories import png, solid_colour_shop, uploaded
from tests.test_faults_round_6 import notices, upload_photo

pytestmark = pytest.mark.django_db

MODEL_GONE = "The search model was changed while this search ran. Search again."
CHANGED = {"detail": MODEL_GONE, "code": "model_changed"}  # the API's 503: what happened, and what to do
# Each search of the API, by what it is searched with: (method, path, data); FIRST is the first product, its image.
SEARCHES = {
    "text": ("get", "/api/search/text/", {"q": "red shirt"}),
    "photo": ("post", "/api/search/image/", {"image": "PHOTO"}),
    "catalog image": ("post", "/api/search/image/", {"image_id": "FIRST_IMAGE"}),
    "similar": ("get", "/api/search/similar/", {"product": "FIRST"}),
    "composed": ("post", "/api/search/composed/", {"product": "FIRST", "text": "in red"}),
    "composed by image": ("post", "/api/search/composed/", {"image_id": "FIRST_IMAGE", "text": "in red"}),
}
# Where each search's query vector is made: encoded, or the mean of the catalog's stored vectors.
VECTOR_STEP = {"text": encoding, "photo": encoding, "catalog image": index, "similar": index, "composed": encoding,
               "composed by image": encoding}
VECTOR_FUNCTION = {encoding: "encode_query", index: "stored_query_vector"}


@pytest.fixture
def models(media):
    """The solid-colour shop under the default model (serving) and 'next' (built, complete, not serving yet)."""
    shop = solid_colour_shop()
    old = EmbeddingModel.objects.get(state="serving")
    new = indexing.register_model("next")
    indexing.queue_missing(new)
    indexing.embed_pending(new.pk, list(ImageEmbedding.objects.filter(model=new).values_list("pk", flat=True)))
    return shop, old, new


def after(monkeypatch, module, name, action):
    """Run ``action`` right after ``module.name`` returns: a staff member's change between two steps of a search."""
    original = getattr(module, name)

    def step(*args, **kwargs):
        result = original(*args, **kwargs)
        action()
        return result

    monkeypatch.setattr(module, name, step)


def before(monkeypatch, module, name, action):
    """Run ``action`` right before ``module.name`` runs."""
    original = getattr(module, name)

    def step(*args, **kwargs):
        action()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, step)


def switch(new):
    return lambda: indexing.switch_serving(new)


def switch_and_delete(old, new):
    def run():
        indexing.switch_serving(new)
        EmbeddingModel.objects.filter(pk=old.pk).delete()
    return run


def api_search(shop, name):
    method, path, data = SEARCHES[name]
    image = shop[0].p2w_images.get()
    values = {"PHOTO": uploaded(png((220, 20, 20))), "FIRST": shop[0].pk, "FIRST_IMAGE": image.pk}
    data = {key: values.get(value, value) for key, value in data.items()}
    return getattr(APIClient(), method)(path, data, format="multipart" if method == "post" else None)


@pytest.mark.parametrize("name", SEARCHES)
def test_a_model_deleted_after_the_query_vector_was_made_is_a_503_not_an_empty_page(models, monkeypatch, name):
    """Between the query vector and the ranking: the ranking found no vector of the model, and said 200, no
    results."""
    shop, old, new = models
    module = VECTOR_STEP[name]
    after(monkeypatch, module, VECTOR_FUNCTION[module], switch_and_delete(old, new))
    response = api_search(shop, name)
    # No Retry-After: the next search runs at once, under the model that serves now.
    assert (response.status_code, response.json(), response.get("Retry-After")) == (503, CHANGED, None)


@pytest.mark.parametrize("name", SEARCHES)
def test_a_model_deleted_right_after_the_search_read_it_is_a_503(models, monkeypatch, name):
    """Before the query vector: a search by a catalog image or a product found no vector of the model for it and
    said "Its images are not embedded yet" (a 400 on the product, false); a text or a photo was a 503 already."""
    shop, old, new = models
    after(monkeypatch, search, "serving_model", switch_and_delete(old, new))
    response = api_search(shop, name)
    # No Retry-After: the next search runs at once, under the model that serves now.
    assert (response.status_code, response.json(), response.get("Retry-After")) == (503, CHANGED, None)


def test_a_model_deleted_while_a_composed_query_is_encoded_is_a_503(models, monkeypatch):
    """The reference's stored features were read after the model went: "Its image is not embedded yet", a 400."""
    shop, old, new = models
    before(monkeypatch, encoding, "reference_features", switch_and_delete(old, new))
    response = api_search(shop, "composed")
    assert (response.status_code, response.json()) == (503, CHANGED)


def product_links(response):
    return [int(pk) for pk in re.findall(r'href="/product/(\d+)/"', response.content.decode())]


@pytest.mark.parametrize("path", ["/?q=red+shirt", "/product/{pk}/?change=in+red"])
def test_the_storefront_says_so_too(models, monkeypatch, path):
    shop, old, new = models
    after(monkeypatch, encoding, "encode_query", switch_and_delete(old, new))
    response = Client().get(path.format(pk=shop[0].pk))
    # It said Retry-After: 30 (as for a busy worker), where the API says none: the next search runs at once.
    assert (response.status_code, response.get("Retry-After")) == (503, None)
    assert notices(response) == ["Search is unavailable right now.", MODEL_GONE]
    monkeypatch.undo()
    again = Client().get("/?q=red+shirt")  # the next search takes the model that serves now ('next' has no mapping)
    assert again.status_code == 200 and notices(again) == []
    assert f"Model: <code>{escape(new)}</code>" in again.content.decode()


def test_more_like_this_on_a_product_page_says_so_too(models, monkeypatch):
    """The product page's "more like this" said the product's images were not indexed yet."""
    shop, old, new = models
    after(monkeypatch, index, "stored_query_vector", switch_and_delete(old, new))
    response = Client().get(f"/product/{shop[0].pk}/")
    assert response.status_code == 200
    assert notices(response) == [MODEL_GONE]


@pytest.mark.parametrize("step", ["serving_model", "vector"])
@pytest.mark.parametrize("name", SEARCHES)
def test_a_model_switched_but_kept_ranks_the_whole_search_under_the_model_it_began_with(models, monkeypatch, name,
                                                                                      step):
    """The retired model keeps its vectors and its index: the search that began under it ends under it, the same
    page as before the switch, one model's vectors only ('next' has 48 dimensions, the old one 32: a mix would
    fail). The next search is the new model's."""
    shop, old, new = models
    before_switch = api_search(shop, name)
    assert (before_switch.status_code, before_switch["X-P2W-Model"]) == (200, old.key)
    module = VECTOR_STEP[name]
    target = (search, "serving_model") if step == "serving_model" else (module, VECTOR_FUNCTION[module])
    after(monkeypatch, *target, switch(new))

    during = api_search(shop, name)
    assert (during.status_code, during["X-P2W-Model"]) == (200, old.key)
    assert during.json()["results"] == before_switch.json()["results"]
    assert len(during.json()["results"]) == (4 if name in ("text", "photo") else 3)

    monkeypatch.undo()
    if not name.startswith("composed"):  # the test's 'next' model has no Pic2Word mapping
        assert api_search(shop, name)["X-P2W-Model"] == new.key


def test_a_model_switched_but_kept_in_the_storefront(models, monkeypatch):
    shop, old, new = models
    before_switch = product_links(Client().get("/?q=red+shirt"))
    after(monkeypatch, encoding, "encode_query", switch(new))
    response = Client().get("/?q=red+shirt")
    assert response.status_code == 200 and notices(response) == []
    assert product_links(response) == before_switch and sorted(before_switch) == sorted(p.pk for p in shop)


def test_a_filter_that_matches_nothing_is_still_an_empty_page(models):
    """The control: the model is there, nothing passes the filter (or the host's queryset is empty): 200, no
    results, not the 503."""
    shop, old, new = models
    response = APIClient().get("/api/search/text/", {"q": "red shirt", "price_min": 1000})
    assert (response.status_code, response.json()["count"], response["X-P2W-Model"]) == (200, 0, old.key)
    results = search.text("red shirt", products=search.product_model().objects.none())
    assert (results.model, results.hits) == (old, [])


@pytest.mark.urls("tests.like_this_urls")
def test_a_host_shops_photo_page_says_so_without_a_wait(models, monkeypatch, client):
    """PhotoSearchView sent Retry-After: 30 with every 503, a model switched under the search too."""
    link = upload_photo(client, "/shop/photo/")
    after(monkeypatch, encoding, "encode_query", switch_and_delete(*models[1:]))
    response = client.get(link + "&change=in+red")
    assert (response.status_code, response.get("Retry-After")) == (503, None)
    assert notices(response) == ["Search is unavailable right now.", MODEL_GONE]

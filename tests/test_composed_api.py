"""Composed search over REST: a reference plus a change, by Pic2Word or a baseline."""

import io

import numpy as np
import pytest
import torch
from rest_framework.test import APIClient

from p2w_search import indexing
from p2w_search.composition import composed_queries, normalise
from p2w_search.embedders import get_embedder
from p2w_search.models import ImageEmbedding
from p2w_search.pic2word import compose
from tests.factories import ProductFactory, ProductImageFactory, png
from tests.ranking import assert_ranking, product_scores

COLOURS = [(220, 20, 20), (20, 200, 40), (20, 40, 220), (10, 10, 10), (245, 245, 245)]


@pytest.fixture
def shop(db, media):
    products = [ProductFactory(category="mug" if i % 2 else "t-shirt") for i in range(len(COLOURS))]
    for product, colour in zip(products, COLOURS):
        ProductImageFactory(product=product, data=png(colour))
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return products


def post(payload, query=""):
    return APIClient().post(f"/api/search/composed/{query}", payload, format="multipart")


def ids(response):
    return [r["product"]["id"] for r in response.json()["results"]]


def test_pic2word_ranks_by_the_composed_query_and_leaves_the_reference_out(shop):
    reference = shop[0]
    response = post({"product": reference.pk, "text": "in green", "method": "pic2word"})
    assert response.status_code == 200, response.content

    # The expected ranking, computed here from the same pieces: stored features -> compose -> cosine.
    embedder = get_embedder()
    features = torch.tensor(stored_features(reference))
    loaded = embedder.load()
    with torch.inference_mode():
        query = compose(loaded.model, loaded.tokenizer, embedder.mapping(), features, ["in green"],
                        template="a photo of * , {text}")[0].numpy()
    scores = product_scores(query, among=[product for product in shop if product != reference])
    assert_ranking(ids(response), scores)
    assert response.json()["results"][0]["score"] == pytest.approx(max(scores.values()), abs=1e-5)


@pytest.mark.parametrize("method", ["pic2word_plus_image", "image_only", "text_only", "image_plus_text", "fusion"])
def test_baselines_and_fusion_match_their_definition(shop, method):
    embedder = get_embedder()
    features = stored_features(shop[1])
    image = normalise(features)[0]
    text = embedder.embed_texts(["with stripes"])[0]
    loaded = embedder.load()
    with torch.inference_mode():
        pic2word = compose(loaded.model, loaded.tokenizer, embedder.mapping(), torch.tensor(features),
                           ["with stripes"], template="a photo of * , {text}")[0].numpy()
    expected_query = {"pic2word_plus_image": normalise(pic2word + 0.5 * image),  # the test IMAGE_WEIGHT
                      "image_only": image, "text_only": text, "image_plus_text": normalise(image + text),
                      "fusion": normalise(pic2word + normalise(image + text))}[method]
    computed = composed_queries(embedder, image_features=features, texts=["with stripes"], method=method)[0]
    np.testing.assert_allclose(computed, expected_query, atol=1e-3)

    response = post({"product": shop[1].pk, "text": "with stripes", "method": method})
    assert_ranking(ids(response), product_scores(expected_query, among=[p for p in shop if p != shop[1]]))


def test_the_default_method_is_pic2word_plus_the_reference_photo_at_the_embedders_weight(shop, settings):
    reference = shop[3]
    features = stored_features(reference)
    pic2word, image = composed_query(features, "pic2word"), normalise(features)
    at_weight = {}
    for weight in (0, 0.5, 2.0):
        embedders = settings.P2W_SEARCH["EMBEDDERS"]
        settings.P2W_SEARCH = {**settings.P2W_SEARCH,
                               "EMBEDDERS": {**embedders, "default": {**embedders["default"], "IMAGE_WEIGHT": weight}}}
        expected = normalise(pic2word + weight * image)[0]
        at_weight[weight] = composed_query(features, "pic2word_plus_image")[0]
        np.testing.assert_allclose(at_weight[weight], expected, atol=1e-6)
        response = post({"product": reference.pk, "text": "in red"})  # no method: the default
        scores = product_scores(expected, among=[p for p in shop if p != reference])
        assert_ranking(ids(response), scores)
        assert response.json()["results"][0]["score"] == pytest.approx(max(scores.values()), abs=1e-5)
    # 0 is the paper's method; the scores above tell the weights apart even where the order does not.
    np.testing.assert_allclose(at_weight[0], pic2word[0], atol=1e-7)
    assert abs(at_weight[2.0] @ image[0] - pic2word[0] @ image[0]) > 0.05


def stored_features(product):
    """The raw features [1, dim] of the product's stored vector, as the search composes from them."""
    row = ImageEmbedding.objects.get(image__product=product)
    return (np.asarray(row.vector, np.float32) * row.norm)[None]


def composed_query(features, method):
    return composed_queries(get_embedder(), image_features=features, texts=["in red"], method=method)


def test_uploaded_reference_and_filters(shop):
    upload = io.BytesIO(png(COLOURS[2]))
    upload.name = "mine.png"
    response = post({"image": upload, "text": "in red"}, query="?category=mug")
    assert response.status_code == 200, response.content
    assert sorted(ids(response)) == sorted(p.pk for p in shop if p.category == "mug")


def test_another_prompt_template_changes_the_query(shop):
    paper = post({"product": shop[0].pk, "text": "in blue"}).json()["results"]
    that = post({"product": shop[0].pk, "text": "in blue", "prompt": "that"}).json()["results"]
    assert [r["score"] for r in paper] != [r["score"] for r in that]


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        ({"text": "in red"}, "product", "Send exactly one reference"),
        ({"product": 999999, "text": "in red"}, "product", "There is no product with id 999999"),
        ({"product": "REF", "text": ""}, "text", "may not be blank"),
        ({"product": "REF", "text": "in red", "method": "magic"}, "method", '"magic" is not a valid choice.'),
        ({"product": "REF", "text": "in red", "prompt": "poem"}, "prompt", "Unknown prompt; choose one of: paper, that"),
        ({"product": "REF", "text": "very " * 40 + "red"}, "text", "tokens"),
    ],
)
def test_bad_composed_queries_get_400(shop, payload, field, reason):
    payload = {k: (shop[0].pk if v == "REF" else v) for k, v in payload.items()}
    response = post(payload)
    assert response.status_code == 400, response.content
    assert reason in " ".join(response.json()[field])

"""Searching an Oscar catalog: "like this, but ..." under filters, variants in results, constant queries.

The tiny test CLIP has random weights, so which colour "in blue" asks for is computed here
from the same pieces the search uses (stored features, the mapping, the text tower); the
targets are planted with that colour inside the filters, and decoys of the very same picture
outside them (another branch of the tree, too dear, out of stock, unpublished).
"""

import numpy as np
import torch
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image
from rest_framework.test import APIClient

from p2w_search.embedders import get_embedder
from p2w_search.models import ImageEmbedding
from p2w_search.pic2word import compose
from tests.oscar_shop.tests.catalog import Category, Product, StockRecord, embed_here
from tests.ranking import assert_ranking, product_scores

PALETTE = [(220, 20, 20), (20, 200, 40), (20, 40, 220), (10, 10, 10), (245, 245, 245), (240, 220, 10),
           (250, 120, 180), (120, 60, 20), (0, 200, 200), (150, 0, 150), (128, 128, 128), (255, 140, 0)]
CHANGE = "in blue"


def composed_query(reference):
    """The Pic2Word query of ``reference``'s stored image and CHANGE, computed as the search computes it."""
    embedder = get_embedder()
    loaded = embedder.load()
    row = ImageEmbedding.objects.get(image__product=reference)
    features = torch.tensor(np.asarray(row.vector, dtype=np.float32) * row.norm)[None]  # [1, dim]
    with torch.inference_mode():
        return compose(loaded.model, loaded.tokenizer, embedder.mapping(), features, [CHANGE],
                       template="a photo of * , {text}")[0].numpy()


def best_colour(query, colours):
    """The colour among ``colours`` whose picture the query ranks first."""
    vectors = get_embedder().embed_images([Image.new("RGB", (40, 40), colour) for colour in colours])
    return colours[int(np.argmax(vectors @ query))]


def composed(reference, query=""):
    response = APIClient().post(f"/api/search/composed/?k=50&{query}", {"product": reference.pk, "text": CHANGE},
                                format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_planted_targets_come_first_and_decoys_outside_the_filters_never_come(shop):
    tree = shop.tree()
    reference = shop.product("Red shirt", category=tree["Shirts"], price=20, stock=4, colour=PALETTE[0])
    embed_here()
    target_colour = best_colour(composed_query(reference), PALETTE[1:])
    others = [colour for colour in PALETTE[1:] if colour != target_colour]

    target = shop.product("Target top", category=tree["Tops"], price=30, stock=2, colour=target_colour)
    variant_target = shop.product("Target polo", category=tree["Shirts"], colour=target_colour,
                                  structure=Product.PARENT)
    shop.variant(variant_target, "Target polo M", price=45, stock=1)  # a variant in stock within the price
    shop.variant(variant_target, "Target polo XL", price=80, stock=0)
    decoys = [
        shop.product("Decoy mug", category=tree["Mugs"], price=30, stock=2, colour=target_colour),
        shop.product("Decoy dear", category=tree["Dresses"], price=90, stock=2, colour=target_colour),
        shop.product("Decoy sold out", category=tree["Tops"], price=30, stock=0, colour=target_colour),
        shop.product("Decoy hidden", category=tree["Shirts"], price=30, stock=2, colour=target_colour, public=False),
    ]
    fillers = [shop.product(f"Filler {i}", category=[tree["Tops"], tree["Dresses"]][i % 2], price=10 + 5 * i,
                            stock=1 + i, colour=colour) for i, colour in enumerate(others)]
    query_vector = composed_query(reference)
    embed_here()

    results = composed(reference, f"category={tree['Clothing'].pk}&price_max=50&stock_min=1")
    ids = [row["product"]["id"] for row in results]
    assert set(ids[:2]) == {target.pk, variant_target.pk}, [row["product"]["title"] for row in results]
    assert not {decoy.pk for decoy in decoys} & set(ids)
    # The whole ranking is the exact one over what Oscar's own queries keep.
    clothing = Category.objects.get_descendants(tree["Clothing"], include_self=True)
    kept = (Product.objects.browsable().filter(categories__in=clothing).exclude(pk=reference.pk)
            .filter(pk__in=[p.pk for p in [target, variant_target, *fillers]
                            if _stock_within(p, price_max=50, stock_min=1)]))
    assert_ranking(ids, product_scores(query_vector, among=list(kept)))
    # Without the filters the decoys tie with the targets: the filters, not the pictures, kept them out.
    unfiltered = [row["product"]["id"] for row in composed(reference)]
    assert set(unfiltered[:5]) == {target.pk, variant_target.pk, *(d.pk for d in decoys[:3])}


def _stock_within(product, *, price_max, stock_min):
    records = StockRecord.objects.filter(product__in=[product, *product.children.all()])
    return records.filter(price__lte=price_max).exists() and records.filter(num_in_stock__gte=stock_min).exists()


def test_a_parent_shows_its_variants_price_and_stock(shop):
    tree = shop.tree()
    polo = shop.product("Polo", category=tree["Shirts"], colour=PALETTE[5], structure=Product.PARENT)
    shop.variant(polo, "Polo S", price=15, stock=0)
    shop.variant(polo, "Polo L", price=25, stock=3)
    embed_here()

    response = APIClient().get("/api/search/text/?q=polo")
    product = response.json()["results"][0]["product"]
    assert product == {"id": polo.pk, "title": "Polo", "upc": "", "structure": "parent",
                       "url": polo.get_absolute_url(), "categories": [tree["Shirts"].pk], "price": "15.00",
                       "num_in_stock": 3}


def test_a_page_of_results_costs_the_same_queries_for_2_results_as_for_20(shop):
    # Parents with variants, the costliest shape: stock records of the product and of its children.
    tree = shop.tree()
    for i in range(20):
        parent = shop.product(f"Parent {i}", category=[tree["Tops"], tree["Shirts"]][i % 2],
                              colour=(12 * i, 90, 200 - 9 * i), structure=Product.PARENT)
        shop.variant(parent, f"Parent {i} S", price=10 + i, stock=i)
        shop.variant(parent, f"Parent {i} L", price=12 + i, stock=1)
    embed_here()
    counts = {}
    for k in (2, 20):
        with CaptureQueriesContext(connection) as queries:
            response = APIClient().get(f"/api/search/text/?q=shirt&k={k}&category={tree['Clothing'].pk}")
        assert len(response.json()["results"]) == k
        assert all(row["product"]["price"] for row in response.json()["results"])
        counts[k] = len(queries)
    assert counts[2] == counts[20], counts

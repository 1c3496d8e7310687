"""Filtered searches choose their path: a filter the planner estimates small (``FILTER_EXACT_ROWS``,
20,000 rows) is ranked exactly at once; a larger one walks the graph with the filter, as before.

Why: at ``hnsw.max_scan_tuples`` pgvector's walk returns the candidates it has not explored, so a
filter far from the query got wrong neighbours (bench/results/filtered_tail.md). On real
PostgreSQL+pgvector; the paths are told apart by the SQL each search ran, never by timings.
"""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from p2w_search import index
from p2w_search.conf import DEFAULTS
from p2w_search.models import ImageEmbedding
from shop_demo.catalog.models import Product
from tests.factories import ProductImageFactory
from tests.ranking import assert_ranking
from tests.test_index import DIM, catalog, exact_scores, model, unit  # noqa: F401 (model is a fixture)

EXACT = "SET LOCAL enable_indexscan = off"


def paths(queries):
    """Which paths a search took, from the SQL it ran: "estimate", then each ranking as "walk" or "exact"."""
    taken, exact = [], False
    for query in queries:
        sql = query["sql"]
        if sql.startswith("EXPLAIN (FORMAT JSON)"):
            taken.append("estimate")
        elif sql == EXACT:
            exact = True
        elif "ORDER BY" in sql and "LIMIT" in sql and "<=>" in sql:
            taken.append("exact" if exact else "walk")
            exact = False
    return taken


def two_clusters(n_near=2000, n_far=1000, *, seed=0):
    """Vectors around e0 ("near", where the queries are) and around -e0 ("far"), and their categories."""
    rng = np.random.default_rng(seed)
    axis = np.eye(DIM)[0]
    near = unit(axis + 0.3 * rng.normal(size=(n_near, DIM)))
    far = unit(-axis + 0.3 * rng.normal(size=(n_far, DIM)))
    return np.concatenate([near, far]), ["near"] * n_near + ["far"] * n_far


def search(model, query, products, *, k=10, **kwargs):  # noqa: F811
    with CaptureQueriesContext(connection) as queries:
        hits = index.nearest_products(model, query.tolist(), k=k, products=products, **kwargs)
    return hits, paths(queries.captured_queries)


def threshold(settings, rows):
    settings.P2W_SEARCH = {**getattr(settings, "P2W_SEARCH", {}), "FILTER_EXACT_ROWS": rows}


def test_the_shipped_threshold():
    assert DEFAULTS["FILTER_EXACT_ROWS"] == 20_000


def test_a_filter_far_from_the_query_is_ranked_exactly_by_default(model):  # noqa: F811
    """A third of the rows pass, all on the other side of the space: the estimate is under 20,000, one exact ranking."""
    vectors, categories = two_clusters()
    ids = catalog(model, vectors, categories=categories)
    far = Product.objects.filter(category="far")
    query = unit(np.eye(DIM)[0] + 0.1 * np.random.default_rng(13).normal(size=DIM))

    hits, taken = search(model, query, far, ef_search=40)

    assert taken == ["estimate", "exact"]
    far_rows = [i for i, c in enumerate(categories) if c == "far"]
    assert_ranking([hit.product_id for hit in hits], exact_scores([ids[i] for i in far_rows], vectors[far_rows], query),
                   k=10)


def test_a_filter_above_the_threshold_walks_the_graph_with_the_filter(model, settings):  # noqa: F811
    """Two thirds of the rows pass, around the query, above a threshold of 100: the graph walk finds k."""
    threshold(settings, 100)
    vectors, categories = two_clusters()
    ids = catalog(model, vectors, categories=categories)
    near = Product.objects.filter(category="near")
    query = unit(np.eye(DIM)[0] + 0.1 * np.random.default_rng(12).normal(size=DIM))

    with CaptureQueriesContext(connection) as queries:
        hits = index.nearest_products(model, query.tolist(), k=10, products=near, ef_search=40)

    assert paths(queries.captured_queries) == ["estimate", "walk"]
    walk_sql = [q["sql"] for q in queries.captured_queries if "<=>" in q["sql"] and "ORDER BY" in q["sql"]][0]
    with index.search_session(ef_search=40), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # as on a large table (the test's is small)
        cursor.execute(f"EXPLAIN {walk_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan using {index.hnsw_index_name(model)}" in plan
    near_rows = [i for i, c in enumerate(categories) if c == "near"]
    assert_ranking([hit.product_id for hit in hits], exact_scores([ids[i] for i in near_rows], vectors[near_rows],
                                                                  query), k=10)


def test_the_exact_path_excludes_products_and_counts_a_product_once(model, media):  # noqa: F811
    vectors, categories = two_clusters(seed=14)
    ids = catalog(model, vectors, categories=categories)
    query = unit(np.eye(DIM)[0])
    # A second, closer image of one near product, and a pending one that must never come back.
    best, closest = ids[5], unit(np.eye(DIM)[0] + 0.01 * np.eye(DIM)[1])
    image = ProductImageFactory(product=Product.objects.get(pk=best))
    ImageEmbedding.objects.create(image=image, model=model, state="ready", norm=1.0, vector=closest.tolist())
    pending = ProductImageFactory(product=Product.objects.get(pk=ids[6]))
    ImageEmbedding.objects.create(image=pending, model=model, state="pending")
    excluded = ids[7]
    near = Product.objects.filter(category="near")

    hits, taken = search(model, query, near, k=10, exclude_product_ids=[excluded], ef_search=40)

    assert taken == ["estimate", "exact"]
    assert hits[0].product_id == best and hits[0].image_id == image.pk
    assert len({hit.product_id for hit in hits}) == 10 and excluded not in {hit.product_id for hit in hits}
    with pytest.raises(StopIteration):
        next(hit for hit in hits if hit.image_id == pending.pk)


def test_with_the_threshold_at_0_the_filtered_walk_runs_as_before(model, settings):  # noqa: F811
    threshold(settings, 0)
    vectors, categories = two_clusters()
    catalog(model, vectors, categories=categories)
    near = Product.objects.filter(category="near")

    hits, taken = search(model, unit(np.eye(DIM)[0]), near, ef_search=40)

    assert len(hits) == 10 and taken == ["walk"]


def test_an_unfiltered_search_asks_the_planner_nothing(model):  # noqa: F811
    vectors, categories = two_clusters(200, 100)
    catalog(model, vectors, categories=categories)

    hits, taken = search(model, unit(np.eye(DIM)[0]), Product.objects.all())

    assert len(hits) == 10 and taken == ["walk"]

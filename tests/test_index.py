"""pgvector search against an exact ranking, the HNSW index in the plan, filters that keep k rows."""

import numpy as np
import pytest
from django.db import connection

from p2w_search import index
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from shop_demo.catalog.models import Product
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory
from tests.ranking import assert_ranking, cosine_scores

DIM = 16


@pytest.fixture
def model(db):
    model = EmbeddingModel.objects.create(
        alias="default", architecture="test", weights="fixed", dimensions=DIM, state=EmbeddingModel.State.SERVING
    )
    index.ensure_hnsw_index(model)
    return model


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def catalog(model, vectors, *, categories=None):
    """One product with one image per vector, written in bulk; return the product ids in order.

    The image files are not written: search reads only the rows. The model's HNSW index is
    built after the rows, as a bulk load would: in half the time of inserting into it.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {index.hnsw_index_name(model)}")
    merchant = MerchantFactory()
    products = Product.objects.bulk_create([
        Product(merchant=merchant, sku=f"V{i}", title=f"v{i}", price=1,
                category=categories[i] if categories else "t-shirt")
        for i in range(len(vectors))
    ])
    images = ProductImage.objects.bulk_create([ProductImage(product=p, file="unused.png", sha256="-")
                                               for p in products])
    ImageEmbedding.objects.bulk_create([
        ImageEmbedding(image=image, model=model, state="ready", norm=1.0, vector=vector.tolist())
        for image, vector in zip(images, vectors)
    ])
    index.ensure_hnsw_index(model)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # the planner's statistics, as autovacuum keeps them on a live table
    return [p.pk for p in products]


def force_graph_walk():
    """Make PostgreSQL walk the HNSW graph for a filtered query, as it does on a large table."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")


def exact_scores(ids, vectors, query):
    """Brute force: ``{id: cosine similarity}`` in numpy, on the halfvec values the database compares.

    The stored vectors and the query are both rounded to float16 (the query is cast to halfvec
    in SQL), so only ties within a float32 sum's rounding may order differently.
    """
    return dict(zip(ids, cosine_scores(unit(query), vectors).tolist()))


def test_ranking_equals_exact_brute_force(model):
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(120, DIM)))
    ids = catalog(model, vectors)
    query = rng.normal(size=DIM)

    hits = index.nearest_products(model, unit(query).tolist(), k=15)

    expected = exact_scores(ids, vectors, query)
    assert_ranking([hit.product_id for hit in hits], expected, k=15)
    np.testing.assert_allclose([hit.score for hit in hits], [expected[hit.product_id] for hit in hits], atol=1e-5)


def test_query_plan_uses_the_models_hnsw_index(model):
    rng = np.random.default_rng(1)
    catalog(model, unit(rng.normal(size=(3000, DIM))))
    queryset = index.nearest_embeddings(model, unit(rng.normal(size=DIM)).tolist())[:20]
    # pgvector's cost estimate grows with ef_search: on 3000 rows and the shipped 200 an exact
    # scan is cheaper and the planner rightly takes it (bench/results/index_recall.md shows the
    # index used at 50k rows); a small ef_search keeps this test about the index's definition.
    with index.search_session(ef_search=40):
        plan = queryset.explain()
    assert f"Index Scan using {index.hnsw_index_name(model)}" in plan


MUGS = ["mug" if i % 10 == 0 else "t-shirt" for i in range(3000)]  # a filter of 10 % selectivity


def test_filtered_search_returns_k_products_when_k_exist(model, settings):
    # The graph walk with the filter (small filters are ranked exactly at once: tests/test_filtered_tail.py).
    settings.P2W_SEARCH = {**getattr(settings, "P2W_SEARCH", {}), "FILTER_EXACT_ROWS": 0}
    rng = np.random.default_rng(3)
    vectors = unit(rng.normal(size=(3000, DIM)))
    ids = catalog(model, vectors, categories=MUGS)
    query = unit(rng.normal(size=DIM)).tolist()
    mugs = Product.objects.filter(category="mug")
    force_graph_walk()
    with index.search_session(ef_search=10):
        plan = index.nearest_embeddings(model, query, products=mugs)[:20].explain()
    assert f"Index Scan using {index.hnsw_index_name(model)}" in plan

    hits = index.nearest_products(model, query, k=20, products=mugs, ef_search=10)

    mug_ids = {pid for pid, category in zip(ids, MUGS) if category == "mug"}
    assert len(hits) == 20
    assert {hit.product_id for hit in hits} <= mug_ids
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_without_iterative_scan_the_same_filter_loses_rows(model):
    """Why search_session sets hnsw.iterative_scan: the graph walk alone stops after ef_search rows."""
    rng = np.random.default_rng(3)
    catalog(model, unit(rng.normal(size=(3000, DIM))), categories=MUGS)
    mugs = Product.objects.filter(category="mug")
    queryset = index.nearest_embeddings(model, unit(rng.normal(size=DIM)).tolist(), products=mugs)[:20]
    force_graph_walk()
    with index.search_session(ef_search=10), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = off")
        assert len(list(queryset)) < 20


def test_tiny_filtered_set_falls_back_to_an_exact_scan(model, settings):
    """Three matches among 3000 rows, and the graph walk gives up early: an exact scan finds all three."""
    settings.P2W_SEARCH = {**getattr(settings, "P2W_SEARCH", {}), "FILTER_EXACT_ROWS": 0}  # the walk first
    rng = np.random.default_rng(4)
    vectors = unit(rng.normal(size=(3000, DIM)))
    categories = ["cap" if i in (5, 1700, 2999) else "t-shirt" for i in range(3000)]
    ids = catalog(model, vectors, categories=categories)
    query = rng.normal(size=DIM)
    force_graph_walk()
    with connection.cursor() as cursor:
        cursor.execute("SET hnsw.max_scan_tuples = 50")  # as a large table hits the default 20,000

    hits = index.nearest_products(model, unit(query).tolist(), k=10, products=Product.objects.filter(category="cap"),
                                  ef_search=10)

    assert_ranking([hit.product_id for hit in hits], exact_scores([ids[i] for i in (5, 1700, 2999)],
                                                                  vectors[[5, 1700, 2999]], query))


def test_several_images_count_once_with_the_best_score(model, media):
    product = ProductFactory()
    near, far = ProductImageFactory(product=product), ProductImageFactory(product=product)
    other = ProductImageFactory()
    query = unit(np.eye(DIM)[0])
    for image, vector in ((near, np.eye(DIM)[0]), (far, np.eye(DIM)[1]),
                          (other, unit(np.eye(DIM)[0] + np.eye(DIM)[2]))):
        ImageEmbedding.objects.create(image=image, model=model, state="ready", norm=1.0, vector=unit(vector).tolist())

    hits = index.nearest_products(model, query.tolist(), k=5)

    assert [(hit.product_id, hit.image_id) for hit in hits] == [(product.pk, near.pk), (other.product_id, other.pk)]
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_excluded_products_and_pending_rows_never_come_back(model):
    rng = np.random.default_rng(5)
    vectors = unit(rng.normal(size=(10, DIM)))
    ids = catalog(model, vectors)
    pending = ProductImageFactory()
    ImageEmbedding.objects.create(image=pending, model=model, state="pending")

    hits = index.nearest_products(model, vectors[0].tolist(), k=20, exclude_product_ids=[ids[0]])

    assert sorted(hit.product_id for hit in hits) == sorted(ids[1:])


def test_query_of_another_dimension_is_refused(model):
    with pytest.raises(ValueError, match="query has 3 dimensions"):
        index.nearest_embeddings(model, [0.1, 0.2, 0.3])


def test_a_search_inside_a_request_transaction_leaves_the_session_as_it_was(db):
    """ATOMIC_REQUESTS (django-oscar recommends it): the search's SET LOCALs once lasted the whole request."""
    from django.db import connection, transaction

    from p2w_search.index import search_session

    def settings_now():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('enable_indexscan'), current_setting('hnsw.ef_search', true),"
                           " current_setting('hnsw.iterative_scan', true)")
            return cursor.fetchone()

    with transaction.atomic():  # the request's transaction
        before = settings_now()
        with search_session(ef_search=123, exact=True):
            assert settings_now() == ("off", "123", "relaxed_order")
        assert settings_now() == before and before[0] == "on"
        with pytest.raises(ZeroDivisionError), search_session(ef_search=77, exact=True):
            1 / 0
        assert settings_now() == before


@pytest.mark.django_db(transaction=True)
def test_one_process_builds_an_hnsw_index_at_a_time_and_the_next_finds_it(test_database_url):
    """Two concurrent builds on the table deadlocked (a worker's start_model beside `p2w_index embed`)."""
    import threading

    import psycopg

    model = EmbeddingModel.objects.create(alias="default", architecture="test", weights="w", dimensions=DIM)
    name = index.hnsw_index_name(model)
    with psycopg.connect(test_database_url, autocommit=True) as other:  # another process building
        other.execute("SELECT pg_advisory_lock(%s)", [index.INDEX_BUILD_LOCK])
        builder = threading.Thread(target=lambda: (index.ensure_hnsw_index(model), connection.close()))
        builder.start()
        builder.join(timeout=1.0)
        assert builder.is_alive()  # it waits for the lock, and builds nothing meanwhile
        assert other.execute("SELECT to_regclass(%s)", [name]).fetchone() == (None,)
        other.execute("SELECT pg_advisory_unlock(%s)", [index.INDEX_BUILD_LOCK])
        builder.join(timeout=30)
        assert not builder.is_alive()
        assert other.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                             [name]).fetchone() == (True,)


@pytest.mark.django_db(transaction=True)
def test_an_index_a_failed_build_left_invalid_is_built_again():
    model = EmbeddingModel.objects.create(alias="default", architecture="test", weights="w", dimensions=DIM)
    name = index.hnsw_index_name(model)
    index.ensure_hnsw_index(model)
    with connection.cursor() as cursor:  # what a build interrupted half-way leaves under the name
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)", [name])
    index.ensure_hnsw_index(model)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
        assert cursor.fetchone() == (True,)

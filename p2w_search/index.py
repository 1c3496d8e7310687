"""pgvector queries over the embeddings: the HNSW index per model and nearest-neighbour search.

The vector column has no fixed dimension (models differ), so each model gets a partial
HNSW index on ``(vector::halfvec(dim)) halfvec_cosine_ops WHERE model_id = <id>``, as
pgvector recommends for mixed dimensions. Queries cast the column the same way and
filter on the same model, so PostgreSQL can use that index, and vectors of two models
are never compared. A model deleted takes its index with it, once the delete commits.
"""

import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Cast
from django.db.models.signals import post_delete
from django.dispatch import receiver
from pgvector import HalfVector
from pgvector.django import CosineDistance, HalfVectorField

from p2w_search import locks
from p2w_search.conf import app_settings
from p2w_search.models import EmbeddingModel, ImageEmbedding

__all__ = [
    "IndexNotReady",
    "Hit",
    "serving_model",
    "ensure_hnsw_index",
    "drop_deleted_hnsw_indexes",
    "hnsw_index_name",
    "nearest_embeddings",
    "search_session",
    "nearest_products",
    "exact_first",
    "estimated_rows",
    "NotEmbedded",
    "stored_query_vector",
]

logger = logging.getLogger(__name__)


class IndexNotReady(Exception):
    """No model serves searches yet (nothing embedded)."""


class NotEmbedded(LookupError):
    """None of the images asked for has a ready vector under the model."""


@dataclass(frozen=True)
class Hit:
    product_id: int
    image_id: int
    score: float  # cosine similarity, 1 is identical


def serving_model(*, using=DEFAULT_DB_ALIAS):
    """Return the EmbeddingModel that serves searches (as database ``using`` sees it), or raise IndexNotReady."""
    model = EmbeddingModel.objects.using(using).filter(state=EmbeddingModel.State.SERVING).first()
    if model is None:
        raise IndexNotReady("The search index is not ready: no embedding model is serving yet.")
    return model


HNSW_INDEX_PREFIX = "p2w_embedding_hnsw_m"


def hnsw_index_name(model):
    return f"{HNSW_INDEX_PREFIX}{int(model.pk)}"


# Namespace of the advisory lock that lets one process at a time build an HNSW index.
INDEX_BUILD_LOCK = 0x7033


def ensure_hnsw_index(model):
    """Create the partial HNSW index of ``model`` if it does not exist yet (or is left invalid).

    Outside a transaction the build runs CONCURRENTLY, so searches and inserts go on meanwhile.
    Two concurrent builds on one table wait for each other's transactions, which PostgreSQL
    ends as a deadlock (a worker's ``start_model`` and ``p2w_index embed`` at once did), so one
    process builds at a time; the next finds the index there. A build that failed half-way leaves
    an invalid index under the name, which is dropped and built again.
    """
    table = ImageEmbedding._meta.db_table
    dim, name = int(model.dimensions), hnsw_index_name(model)
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
    with connection.cursor() as cursor, _one_build_at_a_time():
        if connection.in_atomic_block:
            # CREATE INDEX refuses to run while deferred foreign-key checks of this transaction wait.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
        if (cursor.fetchone() or (False,))[0]:
            cursor.execute(f"DROP INDEX {concurrently} IF EXISTS {name}")
        cursor.execute("SET maintenance_work_mem = %s", [app_settings.INDEX_BUILD_MEMORY])
        cursor.execute(
            f"CREATE INDEX {concurrently} IF NOT EXISTS {name} ON {table} "
            f"USING hnsw ((vector::halfvec({dim})) halfvec_cosine_ops) "
            f"WITH (m = {int(app_settings.HNSW_M)}, ef_construction = {int(app_settings.HNSW_EF_CONSTRUCTION)}) "
            f"WHERE model_id = {int(model.pk)}"
        )
        cursor.execute("RESET maintenance_work_mem")


def drop_deleted_hnsw_indexes():
    """Drop the HNSW indexes of the models that were deleted, and return their names.

    A deleted model's rows go with it, its partial index did not: empty, it was kept forever, one
    per model ever deleted. Run once a delete commits (below), it also drops what an earlier delete
    left. Outside a transaction the indexes are dropped CONCURRENTLY, so searches go on meanwhile,
    and the request that deleted the model (the admin's) waits a bounded time: not at all while
    another process builds an index (it holds the build lock for as long as that takes), and at
    most ``locks.LOCK_WAIT_MS`` for the transactions that use the table (an import's can last
    minutes). What is left then is logged, and dropped by the next sweep (``sweeping``) or model deleted.
    """
    names = _indexes_of_deleted_models()
    if not names:
        return []
    if connection.in_atomic_block:  # its own locks serialise; DROP INDEX CONCURRENTLY cannot run in a transaction
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
        return names
    with locks.advisory_lock(INDEX_BUILD_LOCK) as taken:
        if not taken:
            _left(names, "another process is building an index")
            return []
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = %s", [f"{int(locks.LOCK_WAIT_MS)}ms"])
            try:
                return _dropped_concurrently(cursor, names)
            finally:
                cursor.execute("RESET lock_timeout")


def _indexes_of_deleted_models():
    """The names of the HNSW indexes whose model has no row any more.

    The indexes are read before the rows: a model's index is built once its row is committed, so
    a model registered meanwhile is found with its row.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE i.indrelid = %s::regclass ORDER BY c.relname", [ImageEmbedding._meta.db_table])
        names = [name for (name,) in cursor.fetchall()]
    pattern = re.compile(rf"{re.escape(HNSW_INDEX_PREFIX)}(\d+)")
    model_ids = {name: int(match[1]) for name in names if (match := pattern.fullmatch(name))}
    kept = set(EmbeddingModel.objects.filter(pk__in=model_ids.values()).values_list("pk", flat=True))
    return [name for name, model_id in model_ids.items() if model_id not in kept]


def _dropped_concurrently(cursor, names):
    """Drop the indexes ``names`` CONCURRENTLY, one after the other, and return those dropped.

    The first one that cannot be dropped (its wait ran out) stops the rest, which would wait for
    the same transactions: they are left, and logged.
    """
    for done, name in enumerate(names):
        try:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        except DatabaseError as exc:
            _left(names[done:], str(exc).strip())
            return names[:done]
    return names


def _left(names, reason):
    logger.warning("the HNSW indexes of deleted models %s were left (%s): the next sweep drops them",
                   ", ".join(names), reason)


@receiver(post_delete, sender=EmbeddingModel, dispatch_uid="p2w_search.index.model_deleted")
def _drop_index_once_deleted(sender, instance, using, **kwargs):
    """A deleted model's index goes once its rows are gone for good: after the commit, never for a delete rolled
    back. However the model was deleted (the admin's page or list, the shell, a host's code)."""
    transaction.on_commit(drop_deleted_hnsw_indexes, using=using, robust=True)


@contextmanager
def _one_build_at_a_time(*, poll=0.2):
    """Hold the index-build lock meanwhile (outside a transaction; inside one, its own locks serialise)."""
    if connection.in_atomic_block:
        yield
        return
    with locks.advisory_lock_polled(INDEX_BUILD_LOCK, poll=poll):
        yield


def _as_halfvec(values, dim):
    return Cast(Value(HalfVector(values).to_text()), HalfVectorField(dimensions=dim))


def nearest_embeddings(model, query_vector, *, products=None, using=DEFAULT_DB_ALIAS):
    """Return ready embeddings of ``model`` ordered by cosine distance to ``query_vector``.

    A QuerySet annotated with ``distance``; ``products``, a QuerySet of the product
    model, restricts the search to those products. Evaluate it inside ``search_session()``.
    """
    dim = int(model.dimensions)
    if len(query_vector) != dim:
        raise ValueError(f"query has {len(query_vector)} dimensions, model {model.key} has {dim}")
    queryset = ImageEmbedding.objects.using(using).filter(model=model, state=ImageEmbedding.State.READY)
    if products is not None:
        queryset = queryset.filter(image__product__in=products.values("pk"))
    return queryset.annotate(
        distance=CosineDistance(Cast(F("vector"), HalfVectorField(dimensions=dim)), _as_halfvec(query_vector, dim))
    ).order_by("distance")


# The settings a search changes, restored when it ends (SET LOCAL alone lasts to the end of the
# transaction, which under ATOMIC_REQUESTS is the rest of the request).
_SESSION_SETTINGS = ("hnsw.ef_search", "hnsw.iterative_scan", "enable_indexscan")


@contextmanager
def search_session(*, ef_search=None, exact=False, using=DEFAULT_DB_ALIAS):
    """Run the queries inside with the HNSW settings of a search; the settings end with the block.

    ``hnsw.iterative_scan`` lets a filtered query keep scanning the graph until enough
    rows pass the filter (without it a filter keeping 10 % of rows returns about 4 of 10).
    ``exact`` disables index scans: an exact ranking, the fallback for tiny filtered sets.
    Inside an outer transaction (Django's ``ATOMIC_REQUESTS``) the previous values are set
    back when the block ends, so the rest of the request runs as it would have.
    """
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(["current_setting(%s, true)"] * len(_SESSION_SETTINGS)),
                       list(_SESSION_SETTINGS))
        previous = cursor.fetchone()
        ef = int(ef_search or app_settings.EF_SEARCH)
        cursor.execute(f"SET LOCAL hnsw.ef_search = {ef}")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
        yield
        # Reached only without an error: after one, rolling back to the savepoint restores them.
        for name, value in zip(_SESSION_SETTINGS, previous):
            if value is None:
                cursor.execute(f"SET LOCAL {name} TO DEFAULT")
            else:
                cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def nearest_products(model, query_vector, *, k, products=None, exclude_product_ids=(), ef_search=None,
                     using=DEFAULT_DB_ALIAS):
    """Return up to ``k`` Hits, one per product (its best image), best first.

    Products have several images, so more image rows than ``k`` are read and grouped;
    the window grows until ``k`` products are found or the rows run out.

    A filter the planner estimates at most ``FILTER_EXACT_ROWS`` rows (20,000) is ranked
    exactly at once (``exact_first``): the graph walk is not exact for a filter far from the
    query, since at ``hnsw.max_scan_tuples`` pgvector returns the candidates it has not
    explored instead of stopping (Recall@10 0.44 for a far 10 % filter of 50k products), while
    an exact ranking of 20,000 rows costs tens of ms (bench/results/filtered_tail.md). A larger
    filter walks the graph, the filter applied during the walk (iterative scan); when the walk
    still returns fewer than ``k`` products, an exact scan follows, so a filter never returns
    fewer products than exist.
    """
    excluded = set(exclude_product_ids)
    queryset = nearest_embeddings(model, query_vector, products=products, using=using)
    if excluded:
        queryset = queryset.exclude(image__product__in=excluded)
    rows = queryset.values_list("image__product_id", "image_id", "distance")
    exact_phases = (True,) if exact_first(queryset, products, using=using) else (False, True)
    for exact in exact_phases:
        window = max(2 * k, 10)
        while True:
            with search_session(ef_search=ef_search, exact=exact, using=using):
                batch = list(rows[:window])
            hits = _best_per_product(batch)
            if len(hits) >= k or len(batch) < window:
                break
            window *= 4
        if len(hits) >= k:
            break
    return hits[:k]


def exact_first(queryset, products, *, using=DEFAULT_DB_ALIAS):
    """Whether a search over ``queryset`` (filtered to ``products``) ranks exactly instead of walking the graph.

    Yes when ``products`` filters and the planner estimates at most ``FILTER_EXACT_ROWS``
    rows pass (EXPLAIN: no row is read); never without a filter or with the setting at 0.
    """
    threshold = int(app_settings.FILTER_EXACT_ROWS or 0)
    if threshold <= 0 or products is None or not products.query.where:
        return False
    return estimated_rows(queryset.order_by().values("pk"), using=using) <= threshold


def estimated_rows(queryset, *, using=DEFAULT_DB_ALIAS):
    """The rows ``queryset`` returns, as the planner estimates them (EXPLAIN plans it without running it)."""
    sql, params = queryset.query.get_compiler(using=using).as_sql()
    with connections[using].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _best_per_product(rows):
    best = {}
    for product_id, image_id, distance in rows:
        if product_id not in best or distance < best[product_id][1]:
            best[product_id] = (image_id, distance)
    # relaxed_order may return rows slightly out of order; sort what came back.
    ordered = sorted(best.items(), key=lambda item: (item[1][1], item[0]))
    return [Hit(product_id=pid, image_id=iid, score=1.0 - float(dist)) for pid, (iid, dist) in ordered]


def stored_query_vector(model, images, *, using=DEFAULT_DB_ALIAS):
    """Return the normalised mean of the ready vectors of ``images`` (a queryset) under ``model``.

    The query of "more like this": no encoding, the catalog's own vectors. Raises NotEmbedded.
    """
    vectors = list(
        ImageEmbedding.objects.using(using).filter(model=model, image__in=images, state=ImageEmbedding.State.READY)
        .values_list("vector", flat=True)
    )
    if not vectors:
        raise NotEmbedded("no ready vector for these images")
    mean = np.asarray(vectors, dtype=np.float32).mean(axis=0)  # [dim]
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).tolist()

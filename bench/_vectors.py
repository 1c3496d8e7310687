"""Vectors and ground truth shared by the index benchmarks (index_recall, scale).

- ``embed_products``: render demo products with the project's generator and embed them
  with the shipped demo CLIP (raw features, as the indexing pipeline stores them).
- ``clustered_vectors``: a Gaussian mixture around real embeddings, for sizes that would
  take hours to render and embed on a CPU.
- ``exact_top_k`` and ``recall_at_k``: brute-force neighbours by cosine similarity and the
  share of an approximate answer that is among them.
- ``random_halfvec_sql`` and ``insert_embedded``: embedding rows written by SQL, for the page and
  admin benchmarks, where no model runs.
"""

import os

import numpy as np

__all__ = ["setup_django", "embed_products", "as_halfvec_values", "normalise", "clustered_vectors",
           "exact_top_k", "recall_at_k", "random_halfvec_sql", "insert_embedded"]


def setup_django():
    """Configure Django for a benchmark run as ``python -m bench.<name>``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_demo.settings")
    import django

    django.setup()


def normalise(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def as_halfvec_values(rows):
    """``rows`` rounded to float16 and back: the values a ``halfvec`` column or query holds."""
    return np.asarray(rows, dtype=np.float16).astype(np.float32)


def embed_products(embedder, products, *, seed=0, variant=0, chunk=512, progress=None):
    """Return the raw image features [len(products), dim] of the rendered ``products``.

    Raw (not normalised), as ``indexing.embed_pending`` computes them: the Pic2Word
    mapping reads raw features. ``progress`` is called with the number done so far.
    """
    from shop_demo.catalog import generator

    out = []
    for start in range(0, len(products), chunk):
        images = [generator.render(p, seed=seed, variant=variant) for p in products[start:start + chunk]]
        out.append(embedder.embed_images(images, normalize=False))  # [chunk, dim]
        if progress:
            progress(start + len(images))
    return np.concatenate(out).astype(np.float32, copy=False)


def clustered_vectors(centres, n, *, noise, seed, chunk=100_000):
    """Return ``n`` unit vectors [n, dim]: a random centre plus isotropic Gaussian noise.

    ``noise`` is the expected norm of the noise added to a unit centre (0.3 puts a vector
    at a cosine similarity of about 0.95 to its centre). Deterministic in ``seed``.
    """
    centres = normalise(centres)
    rng = np.random.default_rng(seed)
    dim = centres.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        which = rng.integers(len(centres), size=stop - start)
        jitter = rng.standard_normal((stop - start, dim), dtype=np.float32) * (noise / np.sqrt(dim))
        out[start:stop] = normalise(centres[which] + jitter)
    return out


def exact_top_k(gallery, queries, k, *, allowed=None, chunk=16):
    """Return (rows [q, k], similarities [q, k]) of the exact nearest gallery rows by cosine.

    ``gallery`` [n, dim] and ``queries`` [q, dim] are unit vectors; ``allowed`` is an
    optional list of q boolean masks [n] (the rows a filtered query may return). Rows
    beyond what a filter allows are -1 with similarity -inf.
    """
    rows = np.empty((len(queries), k), dtype=np.int64)
    sims = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), chunk):
        block = queries[start:start + chunk] @ gallery.T  # [chunk, n]
        if allowed is not None:
            for i, mask in enumerate(allowed[start:start + chunk]):
                block[i, ~mask] = -np.inf
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        rows[start:start + len(block)] = np.take_along_axis(top, order, axis=1)
        sims[start:start + len(block)] = np.take_along_axis(top_sims, order, axis=1)
    rows[~np.isfinite(sims)] = -1
    return rows, sims


def recall_at_k(found_sims, exact_sims, *, tolerance=1e-5):
    """Return the Recall@k of each query [q]: the share of the exact top k that was found.

    ``found_sims`` [q, k] are the exact similarities of what the index returned (-inf where
    it returned fewer than k); an answer counts when it is at least as similar as the
    exact k-th neighbour, less ``tolerance``, so that ties and float rounding between
    the database and numpy do not count as misses (ann-benchmarks counts the same way).
    Queries with fewer than k allowed rows are scored on those rows.
    """
    found_sims = np.asarray(found_sims, dtype=np.float32)
    exact_sims = np.asarray(exact_sims, dtype=np.float32)
    available = np.isfinite(exact_sims).sum(axis=1)
    kth = np.array([row[n - 1] if n else np.inf for row, n in zip(exact_sims, available)], dtype=np.float32)
    hits = (found_sims >= (kth - tolerance)[:, None]).sum(axis=1)
    return np.minimum(hits, available) / np.maximum(available, 1)


def random_halfvec_sql(dimensions):
    """SQL of one random ``halfvec`` of ``dimensions`` values in [0, 1): as ``FROM ... {it} v(v)``, one for all rows."""
    return (f"(SELECT ('[' || array_to_string(array(SELECT round(random()::numeric, 3) FROM "
            f"generate_series(1, {int(dimensions)})), ',') || ']')::halfvec)")


def insert_embedded(cursor, model_pk, dimensions, *, at, where="true", params=None):
    """Write the embedding rows of model ``model_pk`` for the images ``i`` that match ``where``: every 50th failed,
    the others ready with one random vector.

    ``at`` is the SQL of the rows' ``queued_at`` and ``updated_at``; ``where`` and ``at`` may use ``params``
    (``%(name)s``).
    """
    cursor.execute(f"""
        INSERT INTO p2w_search_imageembedding (image_id, model_id, state, error, vector, norm, attempts,
                                               claimed_by, queued_at, updated_at)
        SELECT i.id, %(model)s, CASE WHEN i.id %% 50 = 0 THEN 'failed' ELSE 'ready' END,
               CASE WHEN i.id %% 50 = 0 THEN 'cannot identify image file' ELSE '' END,
               CASE WHEN i.id %% 50 = 0 THEN NULL ELSE v.v END, CASE WHEN i.id %% 50 = 0 THEN NULL ELSE 9.5 END,
               1, '', {at}, {at}
        FROM p2w_search_productimage i, {random_halfvec_sql(dimensions)} v(v) WHERE {where} ORDER BY i.id""",
                   {**(params or {}), "model": model_pk})

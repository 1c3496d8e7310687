"""Expected rankings, computed as PostgreSQL ranks: on halfvec values, up to ties within rounding.

The database stores vectors as ``halfvec`` and casts the query to ``halfvec`` too
(p2w_search/index.py), so a ranking computed in numpy on float32 values can order two
near-tied products the other way. These helpers round both sides to float16 first, and
accept any order among products whose expected scores differ by less than ``TIE``: what is
left between numpy and pgvector is the order of a float32 sum.
"""

import numpy as np

from p2w_search.models import ImageEmbedding

__all__ = ["TIE", "halfvec", "cosine_scores", "product_scores", "assert_ranking"]

# Scores closer than this are ties: float32 sums in another order differ by about 1e-7.
TIE = 1e-5


def halfvec(values):
    """``values`` as pgvector's halfvec holds them (float16), in float32 for arithmetic."""
    return np.asarray(values, dtype=np.float32).astype(np.float16).astype(np.float32)


def cosine_scores(query, vectors):
    """Cosine similarity of each row of ``vectors`` [n, dim] to ``query`` [dim], both rounded to halfvec."""
    query, vectors = halfvec(query), halfvec(vectors)
    return (vectors @ query) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))


def product_scores(query, *, among, model=None):
    """``{product id: score}`` of the products ``among`` (their best ready image) against ``query``."""
    rows = ImageEmbedding.objects.filter(image__product__in=among, state=ImageEmbedding.State.READY)
    if model is not None:
        rows = rows.filter(model=model)
    rows = list(rows.values_list("image__product_id", "vector"))
    assert rows, "no ready vectors to rank"
    scores = {}
    vectors = np.stack([np.asarray(vector, dtype=np.float32) for _, vector in rows])  # [n, dim]
    for (product_id, _), score in zip(rows, cosine_scores(query, vectors)):
        scores[product_id] = max(scores.get(product_id, -2.0), float(score))
    return scores


def assert_ranking(actual, scores, *, k=None, tie=TIE):
    """Assert that ids ``actual`` are the top ``k`` (default: all) of ``scores``, best first, up to ties.

    Each result scores no less than the one after it, and no product left out scores more
    than the last result, each within ``tie``.
    """
    expected = sorted(scores, key=lambda pid: -scores[pid])
    count = len(scores) if k is None else min(k, len(scores))
    message = f"got {actual}, expected {expected[:count]} (scores {[round(scores[p], 6) for p in expected]})"
    assert len(actual) == count and len(set(actual)) == count, message
    assert set(actual) <= set(scores), message
    for better, worse in zip(actual, actual[1:]):
        assert scores[better] >= scores[worse] - tie, message
    left_out = [scores[pid] for pid in scores if pid not in set(actual)]
    if left_out and actual:
        assert max(left_out) <= scores[actual[-1]] + tie, message

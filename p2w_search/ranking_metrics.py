"""Metrics of composed retrieval over ranked product lists, each named after what it counts.

A ranking is a list of product names, best first, already without what the benchmark leaves
out (CIRR's reference). Values are shares in [0, 1]; the papers print them times 100.

- ``R@K`` (``recall_at``): the paper's Recall@K. Each query has one listed target (CIRR's
  ``target_hard``, FashionIQ's ``target``); a hit is that product among the K best. This is
  what the Pic2Word paper reports, computed as its authors' evaluation code does.
- ``R_any@K`` (``recall_any_at``): any-correct recall. A hit is *any* of the query's correct
  products among the K best. Not a paper metric: it equals ``R@K`` when each query has one
  correct product and is higher when some have several equally correct ones.
- ``mAP@K`` (``map_at``): CIRCO's mean average precision (Baldrati et al., ICCV 2023), the
  benchmark built for several ground truths: AP@K = (1 / min(K, |G|)) * sum over k <= K of
  P@k * rel(k), where G is the query's correct products; mAP@K is the mean over queries.
- ``R_subset@K``: CIRR's Recall_subset@K, ``recall_at`` over a ranking of only the query's
  image set (``img_set`` members other than the reference), K = 1, 2, 3.
"""

import numpy as np

__all__ = ["KS", "MAP_KS", "SUBSET_KS", "DEFINITIONS", "recall_at", "recall_any_at", "average_precision_at",
           "map_at"]

KS = (1, 5, 10, 50)  # the paper's CIRR columns; FashionIQ reports 10 and 50
MAP_KS = (5, 10, 25, 50)  # CIRCO's
SUBSET_KS = (1, 2, 3)  # CIRR's

DEFINITIONS = {
    "R@K": "the paper's Recall@K: the query's one listed target (CIRR target_hard, FashionIQ target) "
           "is among the K best",
    "R_any@K": "any-correct recall (not a paper metric): at least one of the query's correct products "
               "is among the K best",
    "mAP@K": "CIRCO's mAP@K over all correct products: AP@K = sum_{k<=K} P@k * rel(k) / min(K, |correct|)",
    "R_subset@K": "CIRR's Recall_subset@K: the target among the K best of its img_set, reference left out",
}


def _shares(hits, names):
    """Mean of each column of ``hits`` [n, len(names)], 0.0 for no rows."""
    hits = np.asarray(hits, dtype=np.float64).reshape(-1, len(names))
    return {name: float(hits[:, i].mean()) if len(hits) else 0.0 for i, name in enumerate(names)}


def recall_at(rankings, targets, ks=KS, *, prefix="R"):
    """``{"R@K": share}``: the share of rankings whose top K holds the row's one ``target``."""
    hits = [[target in ranking[:k] for k in ks] for ranking, target in zip(rankings, targets, strict=True)]
    return _shares(hits, [f"{prefix}@{k}" for k in ks])


def recall_any_at(rankings, correct, ks=KS):
    """``{"R_any@K": share}``: the share of rankings whose top K holds any product of the row's ``correct`` set."""
    hits = [[not correct_set.isdisjoint(ranking[:k]) for k in ks]
            for ranking, correct_set in zip(rankings, correct, strict=True)]
    return _shares(hits, [f"R_any@{k}" for k in ks])


def average_precision_at(ranking, correct, k):
    """CIRCO's AP@k of one ranking against its set of correct products (not empty)."""
    if not correct:
        raise ValueError("average precision needs at least one correct product")
    found, total = 0, 0.0
    for rank, name in enumerate(ranking[:k], start=1):
        if name in correct:
            found += 1
            total += found / rank  # P@rank, counted where rel(rank) = 1
    return total / min(k, len(correct))


def map_at(rankings, correct, ks=MAP_KS):
    """``{"mAP@K": mean}``: the mean over rows of ``average_precision_at`` for each K."""
    values = [[average_precision_at(ranking, correct_set, k) for k in ks]
              for ranking, correct_set in zip(rankings, correct, strict=True)]
    return _shares(values, [f"mAP@{k}" for k in ks])

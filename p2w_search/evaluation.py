"""Composed-retrieval evaluation: triplets in the FashionIQ and CIRR layouts, Recall@K.

A query is a reference, a modification text and the correct targets. Recall@K is the share
of queries with a correct target among the K best products. Several products may be
correct: FashionIQ's ``target`` plus an optional ``targets`` list, CIRR's ``target_hard``
plus the ``target_soft`` entries scored 1.0. CIRR leaves the reference out of the ranking,
as its benchmark does. Extra keys ``change`` and ``held_out`` give per-group results.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Query", "load_fashioniq", "load_cirr", "rank_products", "recall_at", "report", "markdown_table"]

KS = (1, 5, 10, 50)


@dataclass(frozen=True)
class Query:
    reference: str
    text: str
    targets: frozenset
    exclude_reference: bool
    groups: dict = field(default_factory=dict, compare=False, hash=False)


def _groups(row, extra):
    groups = dict(extra)
    if "change" in row:
        groups["change"] = row["change"]
    if "held_out" in row:
        groups["split"] = "held-out" if row["held_out"] else "seen"
    return groups


def load_fashioniq(folder):
    """Read every ``cap.<category>.<split>.json`` in ``folder``; one query per caption."""
    queries = []
    files = sorted(Path(folder).glob("cap.*.json"))
    if not files:
        raise FileNotFoundError(f"no FashionIQ caption files (cap.<category>.<split>.json) in {folder}")
    for path in files:
        category = path.name.split(".")[1]
        for row in json.loads(path.read_text()):
            targets = frozenset([str(row["target"]), *map(str, row.get("targets", []))])
            for caption in row["captions"]:
                queries.append(Query(str(row["candidate"]), caption, targets, False,
                                     _groups(row, {"category": category})))
    return queries


def load_cirr(path):
    """Read a CIRR caption file (``cap.rc2.<split>.json``)."""
    queries = []
    for row in json.loads(Path(path).read_text()):
        soft = {str(k) for k, score in row.get("target_soft", {}).items() if score >= 1.0}
        targets = frozenset([str(row["target_hard"]), *soft])
        queries.append(Query(str(row["reference"]), row["caption"], targets, True, _groups(row, {})))
    return queries


def rank_products(query_vectors, gallery_vectors, gallery_products, *, exclude=None, top=50):
    """Return the ``top`` best product ids per query (n lists), by cosine of normalised vectors.

    ``gallery_products`` [m] names the product of each gallery image; a product scores its best
    image. ``exclude`` [n] gives a product to leave out of each query's ranking (or None).
    """
    products, index = np.unique(np.asarray(gallery_products), return_inverse=True)
    scores = np.asarray(query_vectors, np.float32) @ np.asarray(gallery_vectors, np.float32).T  # [n, m]
    best = np.full((len(scores), len(products)), -np.inf, dtype=np.float32)
    for column in range(scores.shape[1]):  # max over each product's images
        np.maximum(best[:, index[column]], scores[:, column], out=best[:, index[column]])
    order = np.argsort(-best, axis=1, kind="stable")[:, :top + 1]
    ranked = products[order]
    if exclude is None:
        return [list(row[:top]) for row in ranked]
    return [[p for p in row if p != left_out][:top] for row, left_out in zip(ranked, exclude)]


def recall_at(rankings, targets, ks=KS):
    """Recall@K for each K: the share of rows whose top K holds a target."""
    hits = np.array([[bool(set(ranking[:k]) & target) for k in ks] for ranking, target in zip(rankings, targets)])
    return {f"R@{k}": float(hits[:, i].mean()) if len(hits) else 0.0 for i, k in enumerate(ks)}


def report(rankings_by_method, queries, ks=KS):
    """Recall per method, overall and per group value: {method: {group: {R@K: value, "n": count}}}."""
    result = {}
    for method, rankings in rankings_by_method.items():
        groups = defaultdict(list)
        for i, query in enumerate(queries):
            groups["all"].append(i)
            for key, value in query.groups.items():
                groups[f"{key}={value}"].append(i)
        result[method] = {
            name: {**recall_at([rankings[i] for i in rows], [queries[i].targets for i in rows], ks), "n": len(rows)}
            for name, rows in sorted(groups.items())
        }
    return result


def markdown_table(result, *, group="all", ks=KS):
    """One row per method for one group of queries."""
    lines = ["| method | " + " | ".join(f"R@{k}" for k in ks) + " | queries |",
             "| --- |" + " ---: |" * (len(ks) + 1)]
    for method, groups in result.items():
        if group in groups:
            row = groups[group]
            lines.append(f"| {method} | " + " | ".join(f"{row[f'R@{k}']:.3f}" for k in ks) + f" | {row['n']} |")
    return "\n".join(lines)

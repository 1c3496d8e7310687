"""Composed-retrieval benchmarks in the CIRR and FashionIQ layouts: loading, ranking, reporting.

Files in the official layouts are evaluated by the protocol the Pic2Word paper reports:
- CIRR (``captions/cap.rc2.<split>.json``): one query per pair, ranked over the split's
  images (``image_splits/split.rc2.<split>.json``) with the reference left out; ``R@K``
  counts ``target_hard`` only.
- FashionIQ (``json/cap.<category>.<split>.json``): one query per triplet, whose two captions
  are joined as the authors' code joins them (``"<captions[1]> and <captions[0]>"``); each
  category ranks in its own gallery (``image_splits/split.<category>.<split>.json``) with
  the reference kept; ``R@K`` counts ``target`` only, and the figure the paper reports is
  the mean over categories of each category's recall (the group ``category-mean``).
A split file is looked for beside the captions, in ``image_splits/`` there, and in
``../image_splits/``; without one, the gallery is the whole indexed catalog (results say so).

Several correct products are measured too, under their own names (``ranking_metrics``):
the correct set is CIRR's ``target_hard`` plus the ``target_soft`` entries scored 1.0, and
FashionIQ's ``target`` plus an optional ``targets`` list (an extra key of the demo's files).
CIRR's ``img_set`` members give ``R_subset@K``. Extra keys ``change``, ``edit`` and ``held_out`` give
per-group results.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from p2w_search import ranking_metrics
from p2w_search.ranking_metrics import KS, MAP_KS, SUBSET_KS

__all__ = ["Query", "Benchmark", "load_cirr", "load_fashioniq", "product_scores", "rank_products",
           "rank_benchmark", "report", "markdown_table", "CATEGORY_MEAN"]

CATEGORY_MEAN = "category-mean"
WHOLE_CATALOG = "the whole indexed catalog"


@dataclass(frozen=True)
class Query:
    reference: str
    text: str
    target: str  # the benchmark's one target: CIRR target_hard, FashionIQ target
    correct: frozenset  # every correct product, the target included
    exclude_reference: bool  # CIRR leaves the reference out of the ranking; FashionIQ keeps it
    gallery: str  # key of Benchmark.galleries
    subset: tuple = ()  # CIRR img_set members, the reference included
    groups: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Benchmark:
    """Queries and the galleries they rank in: {name: frozenset of product names, or None for all}."""

    layout: str  # "cirr" or "fashioniq"
    queries: list
    galleries: dict
    sources: dict  # gallery name -> where its products come from, for the results
    headline: str  # the group the paper reports: "all" (CIRR) or CATEGORY_MEAN (FashionIQ)

    def resolved(self, catalog):
        """Return the benchmark over ``catalog`` (the indexed product names), or raise ValueError.

        Galleries without a split file become the catalog. Every reference, target, gallery
        product and img_set member must be indexed; every target and img_set member must be in
        its query's gallery (the authors' code asserts as much for the target), and a target
        cannot be the reference it is ranked without. Correct products outside the gallery, or
        the left-out reference, cannot be ranked: they leave the query's correct set.
        """
        catalog = frozenset(catalog)
        galleries = {name: catalog if names is None else names for name, names in self.galleries.items()}
        for name, names in galleries.items():
            _require(names - catalog, f"products of the gallery {self.sources[name]}")
        _require({q.reference for q in self.queries} - catalog, "references")
        _require({m for q in self.queries for m in q.subset} - catalog, "img_set members")
        queries = []
        for i, q in enumerate(self.queries):
            gallery = galleries[q.gallery]
            for name, role in ((q.target, "target"), *((member, "img_set member") for member in q.subset)):
                if name not in gallery:
                    raise ValueError(f"query {i} (reference {q.reference}): its {role} {name} is not in its "
                                     f"gallery ({self.sources[q.gallery]})")
            if q.exclude_reference and q.target == q.reference:
                raise ValueError(f"query {i}: its target is its reference {q.reference}, which the ranking leaves out")
            correct = (q.correct & gallery) - ({q.reference} if q.exclude_reference else set())
            queries.append(replace(q, correct=frozenset(correct)))
        return replace(self, queries=queries, galleries=galleries)


def _require(missing, what):
    if missing:
        raise ValueError(f"{len(missing)} {what} are not in the indexed catalog, e.g. {sorted(missing)[:3]}")


def _groups(row, extra):
    groups = dict(extra)
    for key in ("change", "edit"):  # extra keys of the demo's triplets (the official files have none)
        if key in row:
            groups[key] = row[key]
    if "held_out" in row:
        groups["split"] = "held-out" if row["held_out"] else "seen"
    return groups


def _split_file(caption_file, name):
    """The first ``name`` beside ``caption_file``, in ``image_splits/`` there, or in ``../image_splits/``."""
    folder = Path(caption_file).parent
    for candidate in (folder / name, folder / "image_splits" / name, folder.parent / "image_splits" / name):
        if candidate.is_file():
            return candidate
    return None


def _gallery(caption_file, name):
    """(names or None, source) of the split file ``name``: CIRR's {name: path} or FashionIQ's [name]."""
    path = _split_file(caption_file, name)
    if path is None:
        return None, f"{WHOLE_CATALOG} (no {name})"
    data = json.loads(path.read_text())
    return frozenset(map(str, data)), str(path)


def _parse(path, parse_row):
    """``parse_row(row)`` for each triplet of the JSON list in ``path``; errors name the file and the triplet."""
    rows = json.loads(Path(path).read_text())
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of triplets")
    parsed = []
    for i, row in enumerate(rows):
        try:
            parsed.append(parse_row(row))
        except KeyError as error:
            raise ValueError(f"{path}, triplet {i}: no {error}") from None
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}, triplet {i}: {error}") from None
    return parsed


def _cirr_query(row):
    if "target_hard" not in row:
        raise ValueError("no 'target_hard' (CIRR's test files have none: their scores come from the CIRR "
                         "evaluation server)")
    target = str(row["target_hard"])
    soft = {str(name) for name, score in row.get("target_soft", {}).items() if score >= 1.0}
    return Query(reference=str(row["reference"]), text=row["caption"], target=target,
                 correct=frozenset({target, *soft}), exclude_reference=True, gallery="cirr",
                 subset=tuple(map(str, row["img_set"]["members"])) if "img_set" in row else (),
                 groups=_groups(row, {}))


def load_cirr(path):
    """Read a CIRR caption file (``cap.rc2.<split>.json``) and its split's gallery."""
    path = Path(path)
    split = path.name.split(".")[2] if path.name.count(".") >= 3 else ""
    names, source = _gallery(path, f"split.rc2.{split}.json")
    queries = _parse(path, _cirr_query)
    with_sets = sum(bool(q.subset) for q in queries)
    if 0 < with_sets < len(queries):
        raise ValueError(f"{path}: {with_sets} of {len(queries)} triplets have an img_set; all or none must")
    return Benchmark("cirr", queries, {"cirr": names}, {"cirr": source}, "all")


def fashioniq_text(captions):
    """One query text from a triplet's captions: two joined in the authors' order, or a single one."""
    if len(captions) == 2:
        return f"{captions[1]} and {captions[0]}"
    if len(captions) == 1:
        return captions[0]
    raise ValueError(f"expected two captions (or one), got {len(captions)}")


def load_fashioniq(folder, *, split=None):
    """Read every ``cap.<category>.<split>.json`` in ``folder`` (or ``folder/json``), one query per triplet."""
    folder = Path(folder)
    if not any(folder.glob("cap.*.json")) and (folder / "json").is_dir():
        folder = folder / "json"  # the dataset's root
    files = sorted(p for p in folder.glob("cap.*.*.json") if split is None or p.name.split(".")[2] == split)
    if not files:
        raise FileNotFoundError(f"no FashionIQ caption files (cap.<category>.<split>.json) in {folder}")
    splits = sorted({p.name.split(".")[2] for p in files})
    if len(splits) > 1:
        raise ValueError(f"{folder} has the splits {', '.join(splits)}; choose one")
    queries, galleries, sources = [], {}, {}
    for path in files:
        category = path.name.split(".")[1]
        galleries[category], sources[category] = _gallery(path, f"split.{category}.{splits[0]}.json")
        queries += _parse(path, lambda row, category=category: Query(
            reference=str(row["candidate"]), text=fashioniq_text(row["captions"]), target=str(row["target"]),
            correct=frozenset([str(row["target"]), *map(str, row.get("targets", []))]), exclude_reference=False,
            gallery=category, groups=_groups(row, {"category": category})))
    return Benchmark("fashioniq", queries, galleries, sources, CATEGORY_MEAN)


def product_scores(query_vectors, gallery_vectors, gallery_products):
    """Return (products [p], scores [n, p]): each product's best cosine over its images.

    Vectors are normalised; ``gallery_products`` [m] names the product of each gallery row.
    """
    products, index = np.unique(np.asarray(gallery_products), return_inverse=True)
    order = np.argsort(index, kind="stable")
    starts = np.searchsorted(index[order], np.arange(len(products)))
    scores = np.asarray(query_vectors, np.float32) @ np.asarray(gallery_vectors, np.float32)[order].T  # [n, m]
    return products, np.maximum.reduceat(scores, starts, axis=1)  # [n, p]


def rank_products(query_vectors, gallery_vectors, gallery_products, *, exclude=None, top=50):
    """Return the ``top`` best products per query (n lists); ``exclude`` [n] drops one product from each."""
    products, best = product_scores(query_vectors, gallery_vectors, gallery_products)
    ranked = products[np.argsort(-best, axis=1, kind="stable")[:, :top + 1]]
    if exclude is None:
        return [list(row[:top]) for row in ranked]
    return [[p for p in row if p != left_out][:top] for row, left_out in zip(ranked, exclude)]


def rank_benchmark(query_vectors, benchmark, gallery_vectors, gallery_products, *, top=max(KS), chunk=512):
    """Rank each query of a resolved ``benchmark`` in its gallery: (rankings, subset rankings).

    ``gallery_products`` [m] names the product of each row of ``gallery_vectors`` [m, dim]. A
    subset ranking orders the query's img_set members without the reference (empty without one).
    """
    gallery_products = np.asarray(gallery_products)
    rankings, subsets = [None] * len(benchmark.queries), [[] for _ in benchmark.queries]
    by_gallery = defaultdict(list)
    for i, q in enumerate(benchmark.queries):
        by_gallery[q.gallery].append(i)
    for name, rows in by_gallery.items():
        columns = np.isin(gallery_products, list(benchmark.galleries[name]))
        for start in range(0, len(rows), chunk):  # bounds the [chunk, m] score matrix
            part = rows[start:start + chunk]
            products, best = product_scores(query_vectors[part], gallery_vectors[columns], gallery_products[columns])
            ranked = products[np.argsort(-best, axis=1, kind="stable")[:, :top + 1]]
            position = {p: j for j, p in enumerate(products)}
            for row, i in enumerate(part):
                q = benchmark.queries[i]
                left_out = q.reference if q.exclude_reference else None
                rankings[i] = [str(p) for p in ranked[row] if p != left_out][:top]
                members = [m for m in q.subset if m != q.reference]
                subsets[i] = sorted(members, key=lambda m: -best[row, position[m]])
    return rankings, subsets


def _metrics(rankings, subsets, queries):
    targets = [q.target for q in queries]
    values = {**ranking_metrics.recall_at(rankings, targets, KS),
              **ranking_metrics.recall_any_at(rankings, [q.correct for q in queries], KS),
              **ranking_metrics.map_at(rankings, [q.correct for q in queries], MAP_KS)}
    if queries and all(q.subset for q in queries):
        values.update(ranking_metrics.recall_at(subsets, targets, SUBSET_KS, prefix="R_subset"))
    return {**values, "n": len(queries)}


def report(rankings_by_method, benchmark, subsets_by_method=None):
    """Every metric per method, overall and per group: {method: {group: {metric: value, "n": count}}}.

    FashionIQ adds ``category-mean``: each metric's mean over the categories, the paper's figure.
    """
    groups = defaultdict(list)
    for i, query in enumerate(benchmark.queries):
        groups["all"].append(i)
        for key, value in query.groups.items():
            groups[f"{key}={value}"].append(i)
    result = {}
    for method, rankings in rankings_by_method.items():
        subsets = (subsets_by_method or {}).get(method) or [[] for _ in rankings]
        result[method] = {
            name: _metrics([rankings[i] for i in rows], [subsets[i] for i in rows],
                           [benchmark.queries[i] for i in rows])
            for name, rows in sorted(groups.items())
        }
        if benchmark.headline == CATEGORY_MEAN:
            categories = [row for name, row in result[method].items() if name.startswith("category=")]
            result[method][CATEGORY_MEAN] = {
                **{key: float(np.mean([row[key] for row in categories])) for key in categories[0] if key != "n"},
                "n": sum(row["n"] for row in categories)}
    return result


def markdown_table(result, *, group="all", columns=None):
    """One row per method for one group of queries; ``columns`` default to every metric there."""
    first = next((groups[group] for groups in result.values() if group in groups), None)
    if first is None:
        return ""
    columns = columns or [key for key in first if key != "n"]
    lines = ["| method | " + " | ".join(columns) + " | queries |", "| --- |" + " ---: |" * (len(columns) + 1)]
    for method, groups in result.items():
        if group in groups:
            row = groups[group]
            lines.append(f"| {method} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + f" | {row['n']} |")
    return "\n".join(lines)

"""Filtered search's tail: filters near and far from the query, against the unfiltered search.

What is measured, and why: a filter whose products lie far from the query (a dress's
picture, filtered to shoes) makes pgvector's iterative HNSW scan walk past everything
nearer before a row passes the filter; with ``hnsw.max_scan_tuples`` reached an exact
scan follows as well. This benchmark measures ``index.nearest_products`` (the API's
search path, k 10, the shipped ef_search) on the app's own tables:

- Gallery: a Gaussian mixture around demo-product embeddings of the shipped CLIP
  (``scale.make_vectors``, the vectors of ``bench/run scale``), one product and one
  image per vector. Categories: the 2,000 components grouped by spherical k-means into
  100 (about 1 % of the products each); a product's category is that of its component. Loaded
  in bulk (SQL and COPY), then the app's HNSW index built by ``index.ensure_hnsw_index``
  and ANALYZE run, as after an import. Sizes grow in one database (50k, then 100k).
- Queries from the same mixture, not in the gallery. For each query and selectivity
  (1 %, 10 %, 50 % of products), two filters ``category__in=[...]``: *near*, the
  categories whose mean is most similar to the query, and *far*, the least similar,
  each taken until the share is reached (1 to about 50 names, like a category tree's).
- Each search as shipped (``FILTER_EXACT_ROWS`` 20,000: a filter the planner estimates at
  most that many rows is ranked exactly, a larger one walks the graph; ``index.exact_first``)
  and with the graph walk alone (``FILTER_EXACT_ROWS`` 0, the filter-aware walk up to pgvector's
  ``max_scan_tuples``: the code before), alternating query by query, plus the unfiltered
  search (the views' base QuerySet) in the same loop: p50, p95,
  p99, each filtered p95 as a ratio to the unfiltered p95 of the same run, and Recall@10
  against brute force in numpy over the stored halfvec values. The exact SQL scan of
  the same filters (index scans off) is timed as a reference.
- The load average before and after each size is recorded (2 shared cores).

Run inside the embedded services: ``bench/run filtered_tail`` (results in
``bench/results/filtered_tail.{json,md}``). A quick run on its own data:
``P2W_VAR_DIR=$PWD/var/bench-tail-smoke python -m shop_demo.services -- python -m
bench.filtered_tail --sizes 5000 --queries 20 --out /tmp/bench-smoke``.
"""

import argparse
import io
import os
import sys
import time
from types import SimpleNamespace

import numpy as np

from bench import _vectors

K = 10
TARGET_RECALL = 0.98
TARGET_RATIO = 2.0
SELECTIVITIES = (0.01, 0.10, 0.50)
SIDES = ("near", "far")
TODAY = {"FILTER_EXACT_ROWS": 0}  # the graph walk alone (the code before the threshold)
CANDIDATE = {}  # as shipped: FILTER_EXACT_ROWS from the app's defaults
EXTRA_VARIANTS = {}  # e.g. {"exact 5000": {"FILTER_EXACT_ROWS": 5000}}: thresholds beside the shipped one


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50000,100000", help="gallery sizes, comma-separated, growing")
    parser.add_argument("--queries", type=int, default=100, help="queries per size")
    parser.add_argument("--exact-queries", type=int, default=20, help="queries for the exact-scan reference")
    parser.add_argument("--centres", type=int, default=2000, help="demo products whose embeddings are the centres")
    parser.add_argument("--noise", type=float, default=0.3, help="norm of the noise around a centre")
    parser.add_argument("--categories", type=int, default=100, help="categories: groups of similar components")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", default=[],
                        help="another threshold, NAME=ROWS (FILTER_EXACT_ROWS)")
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from bench._service import bench_database

    bench_database("filtered_tail")
    from django.test import override_settings

    from bench import scale
    from bench.report import RESULTS_DIR, write_results
    from p2w_search import indexing
    from p2w_search.conf import app_settings

    for spec in args.variant:
        name, rows = spec.split("=")
        EXTRA_VARIANTS[name] = {"FILTER_EXACT_ROWS": int(rows)}
    started = time.perf_counter()
    model = indexing.register_model()
    vectors, queries, dim = scale.make_vectors(SimpleNamespace(
        centres=args.centres, size=max(sizes), queries=args.queries, noise=args.noise, seed=args.seed))
    centres = centre_vectors(args)
    gallery = _vectors.normalise(_vectors.as_halfvec_values(vectors))  # the values the halfvec column holds
    queries = _vectors.normalise(_vectors.as_halfvec_values(queries))
    groups = category_groups(centres, args.categories, seed=args.seed)  # [centres]: the category of each component
    labels = groups[np.argmax(gallery @ centres.T, axis=1)]  # [size]: the category of each vector's component
    group_centres = _vectors.normalise(np.stack([centres[groups == g].mean(axis=0) for g in range(args.categories)]))
    data = {"config": {
        "sizes": sizes, "queries": len(queries), "k": K, "dimensions": dim, "centres": args.centres,
        "noise": args.noise, "categories": args.categories, "ef_search": int(app_settings.EF_SEARCH), "hnsw_m": int(app_settings.HNSW_M),
        "hnsw_ef_construction": int(app_settings.HNSW_EF_CONSTRUCTION),
        "candidate": {"FILTER_EXACT_ROWS": int(app_settings.FILTER_EXACT_ROWS), **CANDIDATE},
        "today": TODAY,
        "selectivities": list(SELECTIVITIES), "target_ratio": TARGET_RATIO, "target_recall": TARGET_RECALL,
    }, "sizes": []}
    loaded = 0
    for size in sizes:
        load = {"load_average_before": os.getloadavg()}
        t0 = time.perf_counter()
        ids = load_gallery(model, gallery, labels, loaded, size)
        load["load_s"] = time.perf_counter() - t0
        loaded = size
        t0 = time.perf_counter()
        build_index(model)
        load["index_build_s"] = time.perf_counter() - t0
        say(f"{size:,} products loaded in {load['load_s']:.0f} s, index built in {load['index_build_s']:.0f} s")
        scopes = filters(queries, group_centres, labels[:size])
        result = measure(model, ids, gallery[:size], queries, scopes, args.exact_queries, override_settings)
        result.update(size=size, **load, load_average_after=os.getloadavg())
        data["sizes"].append(result)
    data["wall_s"] = time.perf_counter() - started
    out = args.out or RESULTS_DIR
    path = write_results("filtered_tail", data, markdown(data), out=out)
    say(f"wrote {path} ({data['wall_s']:.0f} s)")


def say(message):
    print(message, file=sys.stderr, flush=True)


def category_groups(centres, n, *, seed, rounds=25):
    """Spherical k-means of the mixture's centres into ``n`` categories: [centres] category numbers.

    A category is then a set of similar products, as a shop's are (the demo's kinds and colours
    are what the embeddings cluster on), so a filter to a few categories is near some queries and
    far from others, and a filter's SQL stays as short as a shop's (``category__in`` a few names).
    """
    rng = np.random.default_rng(seed)
    means = centres[rng.choice(len(centres), size=n, replace=False)]
    for _ in range(rounds):
        groups = np.argmax(centres @ means.T, axis=1)
        for g in range(n):
            if (groups == g).any():
                means[g] = _vectors.normalise(centres[groups == g].mean(axis=0))
    return np.argmax(centres @ means.T, axis=1)


def centre_vectors(args):
    """The mixture's centres, normalised (the same embeddings ``scale.make_vectors`` used)."""
    from p2w_search.embedders import get_embedder
    from shop_demo.catalog import generator

    centres = _vectors.embed_products(get_embedder(), generator.generate_products(args.centres, seed=args.seed))
    return _vectors.normalise(centres)


# --- the gallery -----------------------------------------------------------------------------


def load_gallery(model, gallery, labels, start, stop):
    """Write products ``start..stop`` (category ``c<label>``), one image and one ready embedding each.

    Return the product ids of all rows so far, in gallery order. The HNSW index is dropped
    first (rebuilt by ``build_index``), as a shop would around a bulk import.
    """
    from django.db import connection, transaction

    from p2w_search import index
    from p2w_search.models import ImageEmbedding, ProductImage
    from shop_demo.catalog.models import Merchant, Product

    merchant, _ = Merchant.objects.get_or_create(slug="bench", defaults={"name": "bench"})
    product, image, embedding = Product._meta.db_table, ProductImage._meta.db_table, ImageEmbedding._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {index.hnsw_index_name(model)}")
        cursor.execute(
            f"INSERT INTO {product} (merchant_id, sku, title, description, category, price, currency, in_stock, "
            f"listed, created_at) SELECT %s, 'B' || i, 'bench ' || i, '', 'c' || (%s::int[])[i - %s], 10, 'EUR', "
            f"true, true, now() FROM generate_series(%s, %s) AS i ORDER BY i",
            [merchant.pk, [int(x) for x in labels[start:stop]], start, start + 1, stop])
        cursor.execute(
            f"INSERT INTO {image} (product_id, file, sha256, position, source_pk, in_index, created_at) "
            f"SELECT p.id, 'unused.png', '-', 0, '', true, now() FROM {product} p "
            f"WHERE p.merchant_id = %s AND substr(p.sku, 2)::int > %s ORDER BY substr(p.sku, 2)::int",
            [merchant.pk, start])
        cursor.execute(f"SELECT i.id FROM {image} i JOIN {product} p ON p.id = i.product_id "
                       f"WHERE p.merchant_id = %s AND substr(p.sku, 2)::int > %s ORDER BY substr(p.sku, 2)::int",
                       [merchant.pk, start])
        image_ids = [row[0] for row in cursor.fetchall()]
        buffer = io.StringIO()
        for image_id, vector in zip(image_ids, gallery[start:stop]):
            text = "[" + ",".join(f"{v:.5g}" for v in vector.tolist()) + "]"
            buffer.write(f"{image_id}\t{model.pk}\tready\t\t{text}\t1.0\t0\t\t\\N\t{time.strftime('%Y-%m-%d')}\n")
        with cursor.cursor.copy(
                f"COPY {embedding} (image_id, model_id, state, error, vector, norm, attempts, claimed_by, "
                f"queued_at, updated_at) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    ids = Product.objects.filter(merchant=merchant).order_by("pk").values_list("pk", flat=True)
    return np.asarray(list(ids))


def build_index(model):
    from p2w_search import index

    index.ensure_hnsw_index(model)


def filters(queries, centres, labels):
    """Per selectivity and side, per query: (categories, mask [size]) of the near and the far filter.

    ``centres`` [categories, dim] are the categories' mean directions; categories are taken,
    most (near) or least (far) similar to the query first, until the share is reached.
    """
    counts = np.bincount(labels, minlength=len(centres))
    size = len(labels)
    scopes = {}
    for share in SELECTIVITIES:
        for side in SIDES:
            cells = []
            for query in queries:
                order = np.argsort(-(centres @ query))  # most similar centre first
                if side == "far":
                    order = order[::-1]
                order = order[counts[order] > 0]
                taken = np.searchsorted(np.cumsum(counts[order]), share * size) + 1
                chosen = order[:taken]
                cells.append(([f"c{c}" for c in chosen], np.isin(labels, chosen)))
            scopes[(share, side)] = cells
    return scopes


# --- the measurement ---------------------------------------------------------------------------


def measure(model, ids, gallery, queries, scopes, exact_queries, override_settings):
    from bench.report import percentiles
    from p2w_search import index
    from shop_demo.catalog.models import Product

    row_of = {int(pid): i for i, pid in enumerate(ids)}
    everything = np.ones(len(ids), dtype=bool)
    cells = {("all", "unfiltered"): [(None, everything)] * len(queries), **scopes}
    variants = {"today": TODAY, "candidate": CANDIDATE, **{k: {**CANDIDATE, **v} for k, v in EXTRA_VARIANTS.items()}}

    def search(vector, categories, variant):
        products = Product.objects.all() if categories is None else Product.objects.filter(category__in=categories)
        overrides = {key: value for key, value in variants[variant].items() if key.isupper()}
        with override_settings(P2W_SEARCH={**_user_settings(), **overrides}):
            started = time.perf_counter()
            hits = index.nearest_products(model, vector, k=K, products=products)
            return time.perf_counter() - started, [row_of[h.product_id] for h in hits]

    search(queries[0].tolist(), None, "today")  # warm the connection and the caches
    results = []
    for (share, side), cell in cells.items():
        say(f"{len(ids):,} products: {side} {share}")
        _, truth = _vectors.exact_top_k(gallery, queries, K, allowed=[mask for _, mask in cell])
        seconds = {v: [] for v in variants}
        found = {v: [] for v in variants}
        for i, (query, (categories, _)) in enumerate(zip(queries, cell)):
            for variant in (variants if i % 2 == 0 else reversed(list(variants))):  # alternate who goes first
                took, rows = search(query.tolist(), categories, variant)
                seconds[variant].append(took)
                found[variant].append(rows)
        exact = []
        for query, (categories, _) in list(zip(queries, cell))[:exact_queries]:
            products = Product.objects.all() if categories is None else Product.objects.filter(category__in=categories)
            queryset = index.nearest_embeddings(model, query.tolist(), products=products)
            started = time.perf_counter()
            with index.search_session(exact=True):
                list(queryset.values_list("image__product_id", flat=True)[:K])
            exact.append(time.perf_counter() - started)
        row = {"selectivity": share, "side": side, "filter_share": float(np.mean([m.mean() for _, m in cell])),
               "exact_scan": percentiles(exact, points=(50, 95))}
        for variant in variants:
            sims = np.full((len(queries), K), -np.inf, dtype=np.float32)
            for i, rows in enumerate(found[variant]):
                sims[i, :len(rows)] = gallery[rows[:K]] @ queries[i]
            recall = _vectors.recall_at_k(sims, truth)
            row[variant] = {**percentiles(seconds[variant]), "recall": float(recall.mean()),
                            "recall_min": float(recall.min())}
        results.append(row)
    base = next(r for r in results if r["side"] == "unfiltered")
    for row in results:
        for variant in variants:
            row[variant]["p95_vs_unfiltered"] = row[variant]["p95"] / base[variant]["p95"]
            row[variant]["meets"] = bool(row[variant]["p95_vs_unfiltered"] <= TARGET_RATIO
                                         and row[variant]["recall"] >= TARGET_RECALL)
    return {"cells": results}


def _user_settings():
    from django.conf import settings

    return dict(getattr(settings, "P2W_SEARCH", {}))


# --- the report --------------------------------------------------------------------------------


def markdown(data):
    from bench.report import markdown_table

    c = data["config"]
    lines = [
        f"# Filtered search's tail: filters near and far from the query, {c['queries']} queries, k {c['k']}",
        "",
        (
            f"Gallery: a Gaussian mixture around {c['centres']:,} demo-product embeddings ({c['dimensions']} dimensions, "
            f"noise {c['noise']}), one product per vector in the app's tables, {c['categories']} categories (k-means of "
            "the components); "
            f"HNSW m {c['hnsw_m']}, ef_construction {c['hnsw_ef_construction']}, ef_search {c['ef_search']}. "
            "Filters `category__in=[...]`: *near* takes the components most similar to the query, *far* the least "
            "similar, until the share is reached. *today*: the graph walk alone, the filter applied during the walk "
            "(`FILTER_EXACT_ROWS` 0, the code before); *candidate*: as shipped, `FILTER_EXACT_ROWS` "
            f"{c['candidate']['FILTER_EXACT_ROWS']} (a filter the planner estimates at most that many rows is ranked "
            "exactly, a larger one walks the graph). "
            f"Ratio: p95 / the unfiltered p95 of the same variant in the same run (goal <= {c['target_ratio']}); "
            f"Recall@10 against brute force over the stored halfvec values (goal >= {c['target_recall']})."),
        "",
    ]
    for size in data["sizes"]:
        before = ", ".join(f"{x:.2f}" for x in size["load_average_before"])
        after = ", ".join(f"{x:.2f}" for x in size["load_average_after"])
        lines += [(f"## {size['size']:,} products (load {size['load_s']:.0f} s, HNSW build "
                   f"{size['index_build_s']:.0f} s; load average {before} before, {after} after)"), ""]
        variants = [v for v in size["cells"][0] if isinstance(size["cells"][0][v], dict) and "p95" in size["cells"][0][v]
                    and v != "exact_scan"]
        rows = []
        for cell in size["cells"]:
            label = "unfiltered" if cell["side"] == "unfiltered" else f"{cell['side']} {cell['selectivity']:.0%}"
            row = [label, f"{cell['filter_share']:.3f}"]
            for v in variants:
                r = cell[v]
                row += [f"{r['p50']:.1f} / {r['p95']:.1f} / {r['p99']:.1f}", f"**{r['p95_vs_unfiltered']:.2f}**",
                        f"{r['recall']:.3f}", "yes" if r["meets"] else "no"]
            rows.append(row + [cell["exact_scan"]["p50"]])
        header = ["filter", "share"]
        for v in variants:
            header += [f"{v}: p50 / p95 / p99 ms", "p95 / unfiltered p95", "R@10", "goal"]
        lines += [markdown_table(header + ["exact scan p50 ms"], rows), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

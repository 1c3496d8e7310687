"""Recall of the HNSW index on real demo embeddings, against exact search and FAISS.

What is measured, and why:

- The gallery is the demo catalog (the project's generator, through ``load_demo_catalog``)
  embedded with the shipped demo CLIP and stored by the app's own writer
  (``indexing.embed_pending``), so the partial HNSW index of ``p2w_search.index`` answers
  the queries. It is built after the bulk load, as a shop would after an import, by
  ``index.ensure_hnsw_index`` with the shipped HNSW_M, HNSW_EF_CONSTRUCTION and
  INDEX_BUILD_MEMORY.
- Queries are held out of the gallery: products drawn with another generator seed (never
  stored), composed with a change ("in red", "as a sneaker") by Pic2Word, the real
  workload, and, for comparison, their plain image embeddings.
- Recall@10 of ``index.nearest_products``, the API's search path (the same product
  QuerySet as the views, ``hnsw.iterative_scan``), against the exact top 10 by brute force
  over the stored halfvec values, for ef_search in a sweep; without a filter and with the
  API's filter ``category=<a kind>&in_stock=true`` (about 11 % of the products, drawn
  independently of the query, so the filter does not favour the query's neighbours).
- Latency p50/p95 of each setting, and as a ratio to the exact SQL scan (index scans off)
  of the same queries, measured in the same run.
- FAISS ``IndexHNSWFlat`` with the same M and ef_construction on the same values (inner
  product on normalised vectors; an ``IDSelectorBitmap`` for the filter), over efSearch,
  with latency as a ratio to FAISS's exact ``IndexFlatIP``.
- Whether the shipped EF_SEARCH reaches Recall@10 >= 0.98 with and without the filter,
  and the smallest ef_search that does (bisected between the sweep's points).

Run inside the embedded services: ``bench/run index_recall``. A quick run on its own data:
``P2W_VAR_DIR=$PWD/var/bench-index-smoke python -m shop_demo.services -- python -m
bench.index_recall --size 2000 --queries 100 --out /tmp/bench-smoke``.
"""

import argparse
import os
import re
import sys
import time

import numpy as np

from bench import _vectors
from bench._recall_report import markdown, plot

K = 10
TARGET = 0.98
EF_GRID = (10, 20, 40, 64, 100, 200, 400)
EF_BEYOND = (800, 1000)  # pgvector's largest ef_search is 1000
FILTER_LABEL = "category=<kind>&in_stock=true"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50_000, help="products in the gallery (one image each)")
    parser.add_argument("--queries", type=int, default=500, help="held-out queries of each kind")
    parser.add_argument("--seed", type=int, default=0, help="catalog seed (queries use seed + 1)")
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_DEBUG", "0")  # as in production: DEBUG keeps every SQL query in memory
    os.environ.setdefault("P2W_BATCH_SIZE", "128")  # the demo CLIP embeds faster in larger batches on a CPU
    _vectors.setup_django()
    from django.core.management import call_command

    from bench.report import RESULTS_DIR, write_results
    from p2w_search.conf import app_settings

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    model, build = prepare_gallery(args.size, args.seed)
    gallery_ids, gallery = stored_gallery(model)
    say(f"gallery: {len(gallery_ids)} vectors of {gallery.shape[1]} dimensions")
    queries = held_out_queries(model, args.queries, args.size, args.seed + 1)
    scopes = search_scopes(gallery_ids, len(queries["pic2word"]), seed=args.seed)

    data = {
        "config": {
            "gallery": len(gallery_ids), "dimensions": int(gallery.shape[1]), "model": model.key,
            "queries_per_kind": len(queries["pic2word"]), "k": K, "target_recall": TARGET,
            "hnsw_m": int(app_settings.HNSW_M), "hnsw_ef_construction": int(app_settings.HNSW_EF_CONSTRUCTION),
            "index_build_memory": app_settings.INDEX_BUILD_MEMORY, "shipped_ef_search": int(app_settings.EF_SEARCH),
            "ef_grid": list(EF_GRID), "filter": FILTER_LABEL,
            "filter_selectivity": float(np.mean([mask.mean() for mask in scopes["filtered"]["masks"]])),
            "recall": "share of the exact top 10 (brute force over the stored halfvec values, ties within 1e-5 "
                      "count) that the search returned",
        },
        "build": build,
        "plans": query_plans(model, queries["pic2word"], scopes),
        "curves": [], "exact": [], "shipped": [],
    }
    engines = {"pgvector": PgvectorSearch(model, gallery_ids), "faiss": FaissSearch(gallery)}
    data["build"]["faiss_build_s"] = engines["faiss"].build_s
    for kind, vectors in queries.items():
        for scope_name, scope in scopes.items():
            _, truth_sims = _vectors.exact_top_k(gallery, vectors, K, allowed=scope["masks"])
            for name, engine in engines.items():
                exact = engine.exact(vectors, scope, truth_sims, gallery)
                data["exact"].append({"engine": name, "queries": kind, "filter": scope_name, **exact})
                for ef in EF_GRID:
                    say(f"{name} {kind} {scope_name} ef {ef}")
                    point = engine.run(vectors, scope, ef, truth_sims, gallery)
                    data["curves"].append({"engine": name, "queries": kind, "filter": scope_name, "ef": ef,
                                           **point, "p50_vs_exact": point["p50"] / exact["p50"]})
            data["shipped"].append(shipped_verdict(engines["pgvector"], kind, scope_name, vectors, scope,
                                                   truth_sims, gallery, data["curves"],
                                                   int(app_settings.EF_SEARCH)))
    data["wall_s"] = time.perf_counter() - started
    out = args.out or RESULTS_DIR
    os.makedirs(out, exist_ok=True)
    plot(data, os.path.join(out, "index_recall.png"))
    path = write_results("index_recall", data, markdown(data), out=out)
    say(f"wrote {path} ({data['wall_s']:.0f} s)")


def say(message):
    print(message, file=sys.stderr, flush=True)


# --- the gallery -----------------------------------------------------------------------------


def prepare_gallery(size, seed):
    """Load and embed the demo catalog through the app; rebuild its HNSW index; return (model, timings).

    The index is dropped before the vectors are written and built once afterwards, as a
    shop would after a bulk import; a second run finds the catalog embedded and only
    rebuilds the index, so the build time is measured every run.
    """
    from django.core.management import call_command
    from django.db import connection
    from tqdm import tqdm

    from p2w_search import index, indexing
    from p2w_search.models import ImageEmbedding

    timings = {}
    started = time.perf_counter()
    call_command("load_demo_catalog", size=size, seed=seed)
    timings["catalog_s"] = time.perf_counter() - started
    model = indexing.register_model()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {index.hnsw_index_name(model)}")
    indexing.queue_missing(model)  # tasks are sent too; embedding here makes them no-ops
    pending = list(model.embeddings.filter(state=ImageEmbedding.State.PENDING).order_by("pk")
                   .values_list("pk", flat=True))
    started = time.perf_counter()
    with tqdm(total=len(pending), desc="embedding the catalog", unit="img", file=sys.stderr) as bar:
        for start in range(0, len(pending), 512):
            bar.update(indexing.embed_pending(model.pk, pending[start:start + 512]))
    timings["embedded"] = len(pending)
    timings["embed_s"] = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does after a bulk load; the planner needs the counts
    started = time.perf_counter()
    index.ensure_hnsw_index(model)
    timings["index_build_s"] = time.perf_counter() - started
    say(f"catalog {timings['catalog_s']:.0f} s, embedded {len(pending)} in {timings['embed_s']:.0f} s, "
        f"index built in {timings['index_build_s']:.1f} s")
    return model, timings


def stored_gallery(model):
    """Return (product ids [n], unit vectors [n, dim]) of the ready embeddings, as stored."""
    from p2w_search.models import ImageEmbedding

    rows = (ImageEmbedding.objects.filter(model=model, state=ImageEmbedding.State.READY)
            .order_by("image__product_id").values_list("image__product_id", "vector"))
    ids, vectors = zip(*rows.iterator(chunk_size=5000))
    return np.asarray(ids), _vectors.normalise(np.asarray(vectors, dtype=np.float32))  # halfvec values


def held_out_queries(model, n, gallery_size, seed):
    """Return {"pic2word": [n, dim], "image_only": [n, dim]} unit query vectors, as halfvec values.

    References are products of the generator under another seed, never stored; the
    changes are the triplet texts of the demo's evaluation (``triplets.make_triplets``).
    """
    from dataclasses import replace

    from p2w_search import indexing
    from p2w_search.composition import composed_queries
    from shop_demo.catalog import generator, triplets

    embedder = indexing.embedder_for(model)
    references = [replace(p, sku=f"QUERY-{p.index}") for p in generator.generate_products(n, seed=seed)]
    # Other products only let make_triplets see which changes exist; 5,000 cover the combinations.
    others = generator.generate_products(min(gallery_size, 5000), seed=seed - 1)
    texts = {t.reference: t.text for t in triplets.make_triplets(references + others, seed=seed, per_product=1)}
    references = [p for p in references if p.sku in texts][:n]
    features = _vectors.embed_products(embedder, references, seed=seed)  # raw [n, dim]
    composed = composed_queries(embedder, image_features=features, texts=[texts[p.sku] for p in references])
    say(f"{len(references)} held-out queries, e.g. {references[0].title!r} + {texts[references[0].sku]!r}")
    # The SQL casts a query to halfvec, so the exact ranking and FAISS get the same rounded values.
    return {kind: _vectors.normalise(_vectors.as_halfvec_values(vectors))
            for kind, vectors in (("pic2word", composed), ("image_only", _vectors.normalise(features)))}


def search_scopes(gallery_ids, n, *, seed):
    """The products each query may return: all (the views' base QuerySet) and the API's filter.

    Returns {"unfiltered" | "filtered": {"products": [QuerySet per query], "masks": [bool [n_gallery]],
    "labels": [...]}}; the filtered scope draws one kind per query, independently of the query.
    """
    from django.apps import apps

    from p2w_search.api.filters import product_filterset
    from p2w_search.conf import app_settings, product_model_label
    from shop_demo.catalog import generator

    base = apps.get_model(product_model_label())._default_manager.filter(**app_settings.SEARCH_FILTER)
    by_kind = {}
    for kind in generator.KINDS:
        filterset = product_filterset()(data={"category": kind, "in_stock": "true"}, queryset=base)
        assert filterset.is_valid(), filterset.errors
        qs = filterset.qs
        by_kind[kind] = (qs, np.isin(gallery_ids, list(qs.values_list("pk", flat=True))))
    everything = np.isin(gallery_ids, list(base.values_list("pk", flat=True)))
    kinds = [str(kind) for kind in np.random.default_rng(seed).choice(generator.KINDS, size=n)]
    return {
        "unfiltered": {"products": [base] * n, "masks": [everything] * n, "labels": ["all"] * n},
        "filtered": {"products": [by_kind[k][0] for k in kinds], "masks": [by_kind[k][1] for k in kinds],
                     "labels": list(kinds)},
    }


def query_plans(model, vectors, scopes):
    """EXPLAIN of the search SQL at the shipped ef_search: whether the HNSW index is used, per filter value."""
    from p2w_search import index

    plans = {}
    for name, scope in scopes.items():
        uses, shown = {}, None
        for label in dict.fromkeys(scope["labels"]):
            i = scope["labels"].index(label)
            queryset = index.nearest_embeddings(model, vectors[i].tolist(), products=scope["products"][i])
            with index.search_session():
                plan = queryset.values_list("image__product_id", "image_id", "distance")[:2 * K].explain()
            uses[label] = index.hnsw_index_name(model) in plan
            shown = shown or re.sub(r"'\[[^\]]*\]'", "'[query vector]'", plan)
        plans[name] = {"uses_hnsw_index": uses, "plan": shown}
        if not all(uses.values()):
            say(f"note: the {name} search does not use the HNSW index for {[k for k, v in uses.items() if not v]}")
    return plans


# --- the engines -------------------------------------------------------------------------------


def _point(found_sims, truth_sims, seconds, returned):
    from bench.report import percentiles

    recall = _vectors.recall_at_k(found_sims, truth_sims)
    return {"recall": float(recall.mean()), "recall_min": float(recall.min()),
            "share_below_0.9": float((recall < 0.9).mean()), "returned": float(np.mean(returned)),
            **percentiles(seconds, points=(50, 95))}


def _similarities(rows, vectors, gallery):
    """Exact similarities [q, K] of the gallery rows each query got (-inf where fewer than K came back)."""
    sims = np.full((len(rows), K), -np.inf, dtype=np.float32)
    for i, found in enumerate(rows):
        found = [r for r in found if r >= 0][:K]
        sims[i, :len(found)] = gallery[found] @ vectors[i]
    return sims


class PgvectorSearch:
    """The app's search: ``index.nearest_products`` with the views' product QuerySets."""

    def __init__(self, model, gallery_ids):
        self.model = model
        self.row_of = {int(pid): i for i, pid in enumerate(gallery_ids)}

    def search(self, vector, products, ef):
        from p2w_search import index

        return index.nearest_products(self.model, vector, k=K, products=products, ef_search=ef)

    def run(self, vectors, scope, ef, truth_sims, gallery):
        rows, seconds = [], []
        self.search(vectors[0].tolist(), scope["products"][0], ef)  # warm the connection
        for vector, products in zip(vectors, scope["products"]):
            vector = vector.tolist()
            started = time.perf_counter()
            hits = self.search(vector, products, ef)
            seconds.append(time.perf_counter() - started)
            rows.append([self.row_of[h.product_id] for h in hits])
        return _point(_similarities(rows, vectors, gallery), truth_sims, seconds, [len(r) for r in rows])

    def exact(self, vectors, scope, truth_sims, gallery, n=50):
        """The exact SQL ranking (index scans off) of the first ``n`` queries: latency baseline and a check
        that the brute-force ground truth is the database's own ranking."""
        from p2w_search import index

        rows, seconds = [], []
        for vector, products in zip(vectors[:n], scope["products"][:n]):
            queryset = index.nearest_embeddings(self.model, vector.tolist(), products=products)
            started = time.perf_counter()
            with index.search_session(exact=True):
                found = list(queryset.values_list("image__product_id", flat=True)[:K])
            seconds.append(time.perf_counter() - started)
            rows.append([self.row_of[pid] for pid in found])
        point = _point(_similarities(rows, vectors[:n], gallery), truth_sims[:n], seconds, [len(r) for r in rows])
        return {"n": len(rows), "p50": point["p50"], "p95": point["p95"], "recall_vs_numpy": point["recall"]}


class FaissSearch:
    """FAISS HNSW with the app's M and ef_construction, on normalised copies of the stored values."""

    def __init__(self, gallery):
        import faiss

        from p2w_search.conf import app_settings

        self.faiss = faiss
        faiss.omp_set_num_threads(os.cpu_count())  # the build may use every core, as PostgreSQL's may
        started = time.perf_counter()
        self.hnsw = faiss.IndexHNSWFlat(gallery.shape[1], int(app_settings.HNSW_M), faiss.METRIC_INNER_PRODUCT)
        self.hnsw.hnsw.efConstruction = int(app_settings.HNSW_EF_CONSTRUCTION)
        self.hnsw.add(gallery)
        self.build_s = time.perf_counter() - started
        self.flat = faiss.IndexFlatIP(gallery.shape[1])
        self.flat.add(gallery)
        faiss.omp_set_num_threads(1)  # one query at a time on one core, like one PostgreSQL backend
        self._selectors = {}

    def _selector(self, mask):
        key = mask.__array_interface__["data"][0]  # the masks of one filter are one array
        if key not in self._selectors:
            bits = np.packbits(mask, bitorder="little")  # IDSelectorBitmap reads bit i of byte i >> 3
            self._selectors[key] = (bits, self.faiss.IDSelectorBitmap(len(mask), self.faiss.swig_ptr(bits)))
        return self._selectors[key][1]

    def _params(self, mask, ef=None):
        params = self.faiss.SearchParametersHNSW() if ef else self.faiss.SearchParameters()
        if ef:
            params.efSearch = ef
        if not mask.all():
            params.sel = self._selector(mask)
        return params

    def _search(self, index, vectors, scope, ef):
        rows, seconds = [], []
        for vector, mask in zip(vectors, scope["masks"]):
            params = self._params(mask, ef)
            started = time.perf_counter()
            _, found = index.search(vector[None], K, params=params)
            seconds.append(time.perf_counter() - started)
            rows.append([int(r) for r in found[0] if r >= 0])
        return rows, seconds

    def run(self, vectors, scope, ef, truth_sims, gallery):
        rows, seconds = self._search(self.hnsw, vectors, scope, ef)
        return _point(_similarities(rows, vectors, gallery), truth_sims, seconds, [len(r) for r in rows])

    def exact(self, vectors, scope, truth_sims, gallery, n=50):
        rows, seconds = self._search(self.flat, vectors[:n], scope, None)
        point = _point(_similarities(rows, vectors[:n], gallery), truth_sims[:n], seconds, [len(r) for r in rows])
        return {"n": len(rows), "p50": point["p50"], "p95": point["p95"], "recall_vs_numpy": point["recall"]}


# --- the shipped setting -----------------------------------------------------------------------


def shipped_verdict(engine, kind, scope_name, vectors, scope, truth_sims, gallery, curves, shipped):
    """Recall@10 at the shipped ef_search, and the smallest ef_search reaching TARGET.

    The sweep brackets the answer; integers between the last point below TARGET and the
    first above are bisected (recall grows with ef_search, up to noise of a few queries).
    """
    measured = {c["ef"]: c["recall"] for c in curves
                if c["engine"] == "pgvector" and c["queries"] == kind and c["filter"] == scope_name}

    def recall(ef):
        if ef not in measured:
            say(f"pgvector {kind} {scope_name} ef {ef} (bisecting)")
            measured[ef] = engine.run(vectors, scope, ef, truth_sims, gallery)["recall"]
        return measured[ef]

    at_shipped = recall(shipped)
    points = (*EF_GRID, *EF_BEYOND)
    high = next((ef for ef in points if recall(ef) >= TARGET), None)
    smallest = None
    if high is not None:
        low = max([ef for ef in points if ef < high] or [0])
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if recall(middle) >= TARGET else (middle, high)
        smallest = high
    return {"queries": kind, "filter": scope_name, "shipped_ef_search": shipped, "recall_at_shipped": at_shipped,
            "reaches_target": at_shipped >= TARGET, "smallest_ef_search_reaching_target": smallest,
            "recall_at_smallest": measured.get(smallest)}


if __name__ == "__main__":
    main()

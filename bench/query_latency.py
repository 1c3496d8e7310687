"""Query latency of composed (Pic2Word) search over REST, against the SQL ranking alone.

A client POSTs ``{"product": id, "text": "in red"}`` to ``/api/search/composed/`` of the real
web server (the Procfile's gunicorn line); the query is encoded by the real query worker
(the Procfile's ``-P solo`` line on the query queue) and ranked by PostgreSQL's HNSW index.
Measured at each catalog size with 1 and with 8 concurrent clients: p50, p95, p99 and
queries per second, and, from the ``Server-Timing`` header of every answer, where the time
went (encoding on the worker, the rest of the queue round trip, the SQL ranking, loading and
serialising the page, the rest of the view; what the client saw beyond the view is HTTP,
gunicorn, middleware and JSON rendering).

The baseline, measured in the same run on the same queries: the SQL floor, the statements
of the ranking (``index.nearest_products``, captured and replayed on one connection of this
process) with nothing else around them.

The catalog is inserted in bulk, not imported: the first ``--seed-products`` products have the
demo model's embeddings of their generated images; the others are copies of those vectors
with Gaussian noise (renormalised), each a product with one image. The HNSW index is then
built by ``index.ensure_hnsw_index``, as the app builds it, and the tables are analysed (as
autovacuum would).

    bench/run query_latency               # python -m bench.query_latency --help for the sizes
"""

import argparse
import os
import re
import threading
import time

import numpy as np

from bench import _service
from bench.report import RESULTS_DIR, markdown_table, percentiles, pyplot, write_results

NAME = "query_latency"
CHANGES = ["in red", "in blue", "with stripes", "with polka dots", "as a mug", "as a sneaker", "in black",
           "with a star print", "with checks", "in yellow with a heart print", "as a dress", "in green"]
PHASES = ["encode", "queue", "sql", "serialize", "view_other", "http_other"]


# The query worker as the Procfile runs it (threads handing queries to one batcher), and the
# baseline: one query at a time, each encoded alone (the Procfile's line before batching).
WORKERS = {
    "batched": {"env": {}},
    "unbatched": {"env": {"P2W_QUERY_BATCH_SIZE": "1"}, "extra": "--pool solo --concurrency 1"},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="products in the catalog")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent clients")
    parser.add_argument("--queries", type=int, default=600, help="measured queries per size and client count")
    parser.add_argument("--warmup", type=int, default=40, help="queries before each measurement, not counted")
    parser.add_argument("--seed-products", type=int, default=2000, help="products with real embeddings")
    parser.add_argument("--noise", type=float, default=0.3, help="Gaussian noise (per unit vector) of the copies")
    parser.add_argument("--workers", nargs="+", default=list(WORKERS), choices=list(WORKERS),
                        help="query worker variants, measured one after the other on the same queries")
    parser.add_argument("--omp-wait-policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY of the query worker ('' leaves OpenMP's default, which spins)")
    parser.add_argument("--name", default=NAME,
                        help="results name, e.g. query_latency-vit-b-32 for a run with another model (P2W_CLIP_*)")
    args = parser.parse_args(argv)
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    workdir = _service.bench_database(args.name)

    from p2w_search import indexing

    model = indexing.register_model()
    rng = np.random.default_rng(0)
    seeds, metadata = seed_embeddings(model, args.seed_products)
    results, builds = [], {}
    started = time.monotonic()
    with _service.Procfile(workdir / "logs") as shop:
        shop.web()
        for size in sorted(args.sizes):
            builds[size] = grow_catalog(model, seeds, metadata, size, noise=args.noise, rng=rng)
            workload = queries(size, args.queries + args.warmup, rng)
            floor = sql_floor(model, workload)
            for variant in args.workers:
                worker = shop.worker("query", replica=variant, **WORKERS[variant])
                for clients in args.clients:
                    print(f"{size} products, {clients} client(s), {variant} query worker", flush=True)
                    load = os.getloadavg()[0]
                    run = measure(shop.base_url, workload, clients, warmup=args.warmup)
                    run.update(size=size, clients=clients, worker=variant, floor=percentiles(floor), load_average=load)
                    run["ratio_p50"] = run["latency"]["p50"] / run["floor"]["p50"]
                    run["ratio_p95"] = run["latency"]["p95"] / run["floor"]["p95"]
                    print(f"  p50 {run['latency']['p50']:.1f} ms, p95 {run['latency']['p95']:.1f} ms, "
                          f"{run['qps']:.0f} q/s; SQL floor p50 {run['floor']['p50']:.2f} ms", flush=True)
                    results.append(run)
                worker.stop()
    data = {
        "setup": {"sizes": args.sizes, "clients": args.clients, "queries": args.queries, "warmup": args.warmup,
                  "seed_products": args.seed_products, "noise": args.noise, "model": model.key,
                  "omp_wait_policy": args.omp_wait_policy or "default", "cores": _service.cpu_count(),
                  "wall_s": time.monotonic() - started},
        "builds": builds, "runs": results,
    }
    plot(results, args.name)
    print(write_results(args.name, data, report(data)).read_text())


def seed_embeddings(model, count):
    """Raw image features [count, dim] of ``count`` generated products under ``model``, and the products."""
    from p2w_search import indexing
    from shop_demo.catalog import generator

    embedder = indexing.embedder_for(model)
    products = generator.generate_products(count, seed=0)
    features = embedder.embed_images([generator.render(p, seed=0) for p in products], normalize=False)
    return features, products


def grow_catalog(model, seeds, metadata, size, *, noise, rng, chunk=5000):
    """Add products (one image, one ready embedding each) up to ``size``; rebuild the index as the app does.

    Product ``i`` has the vector of seed ``i % len(seeds)``, exact for the first ``len(seeds)``
    products and with Gaussian noise for the copies. Returns the seconds of the insert and the build.
    """
    from django.db import connection
    from pgvector import HalfVector

    from p2w_search import index
    from p2w_search.models import ImageEmbedding, ProductImage
    from shop_demo.catalog.models import Merchant, Product

    merchant, _ = Merchant.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    have = Product.objects.count()
    with connection.cursor() as cursor:  # a bulk load is faster without the graph; it is built after
        cursor.execute(f"DROP INDEX IF EXISTS {index.hnsw_index_name(model)}")
    started = time.monotonic()
    norms = np.linalg.norm(seeds, axis=1)
    units = seeds / norms[:, None]
    for start in range(have, size, chunk):
        numbers = range(start, min(start + chunk, size))
        source = [number % len(seeds) for number in numbers]
        vectors = units[source]  # [n, dim]
        copies = np.asarray(numbers) >= len(seeds)
        dim = vectors.shape[1]
        vectors[copies] += rng.standard_normal((int(copies.sum()), dim)) * noise / np.sqrt(dim)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        products = Product.objects.bulk_create([
            Product(merchant=merchant, sku=f"BENCH-{number:06d}", title=metadata[s].title,
                    description=metadata[s].description, category=metadata[s].category,
                    price=metadata[s].price, in_stock=metadata[s].in_stock)
            for number, s in zip(numbers, source)])
        images = ProductImage.objects.bulk_create([
            ProductImage(product=product, file=f"p2w/images/bench/{product.sku}.png", sha256="0" * 64)
            for product in products])
        ImageEmbedding.objects.bulk_create([
            ImageEmbedding(image=image, model=model, state=ImageEmbedding.State.READY, attempts=1,
                           vector=HalfVector(vector), norm=float(norms[s]))
            for image, vector, s in zip(images, vectors, source)])
    inserted = time.monotonic()
    index.ensure_hnsw_index(model)
    built = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"catalog of {size}: inserted in {inserted - started:.0f} s, HNSW index built in {built - inserted:.0f} s",
          flush=True)
    return {"insert_s": inserted - started, "index_build_s": built - inserted}


def queries(size, count, rng):
    """``count`` composed queries: a random product of the catalog and a change in words."""
    from shop_demo.catalog.models import Product

    ids = np.asarray(Product.objects.order_by("pk").values_list("pk", flat=True))
    return [{"product": int(rng.choice(ids)), "text": CHANGES[int(rng.integers(len(CHANGES)))]}
            for _ in range(count)]


def sql_floor(model, workload):
    """Seconds of the ranking's SQL alone for each query: the view's statements, replayed on one connection."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from p2w_search import encoding, index
    from p2w_search.encoding import COMPOSED
    from p2w_search.models import ProductImage
    from shop_demo.catalog.models import Product

    products = Product.objects.filter(listed=True)
    times = []
    for query in workload:
        image = ProductImage.objects.filter(product_id=query["product"]).first()
        vector = encoding.encode_locally(model.pk, COMPOSED, {"text": query["text"], "method": "pic2word",
                                                               "template": None, "image_id": image.pk})
        with CaptureQueriesContext(connection) as captured:
            index.nearest_products(model, vector, k=20, products=products, exclude_product_ids=[query["product"]])
        statements = [entry["sql"] for entry in captured.captured_queries]
        with connection.cursor() as cursor:
            started = time.perf_counter()
            with transaction.atomic():
                for statement in statements:
                    cursor.execute(statement)
            times.append(time.perf_counter() - started)
    return times


def measure(base_url, workload, clients, *, warmup):
    """Send ``workload`` from ``clients`` threads, each on its own keep-alive connection."""
    import requests

    url = f"{base_url}/api/search/composed/"
    measured = workload[warmup:]
    shares = [measured[i::clients] for i in range(clients)]
    samples, errors, lock = [], [], threading.Lock()

    def client(mine, record):
        session = requests.Session()
        for query in mine:
            started = time.perf_counter()
            response = session.post(url, json=query, timeout=30)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:200]}")
            elif record:
                with lock:
                    samples.append((elapsed, server_timing(response.headers["Server-Timing"])))

    client(workload[:warmup], record=False)
    threads = [threading.Thread(target=client, args=(mine, True)) for mine in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} searches failed, e.g. {errors[0]}")
    latencies = [elapsed for elapsed, _ in samples]
    return {"queries": len(samples), "qps": len(samples) / wall, "latency": percentiles(latencies),
            "mean_ms": 1000 * float(np.mean(latencies)), "breakdown_ms": breakdown(samples)}


def server_timing(header):
    """``{name: milliseconds}`` of a Server-Timing header."""
    return {name: float(value) for name, value in re.findall(r"(\w+);dur=([0-9.]+)", header)}


def breakdown(samples):
    """Mean milliseconds of each phase; the view's rest and what the client saw beyond the view."""
    phases = {name: [] for name in PHASES}
    for elapsed, timing in samples:
        parts = {name: timing.get(name, 0.0) for name in ("encode", "queue", "sql", "serialize")}
        parts["view_other"] = timing["total"] - sum(parts.values())
        parts["http_other"] = 1000 * elapsed - timing["total"]
        for name, value in parts.items():
            phases[name].append(value)
    return {name: float(np.mean(values)) for name, values in phases.items()}


def plot(runs, name=NAME):
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(9, 4))
    labels = [f"{run['size'] // 1000}k, {run['clients']} client{'s' if run['clients'] > 1 else ''}, {run['worker']}"
              for run in runs]
    bottom = np.zeros(len(runs))
    for phase in PHASES:
        values = np.array([run["breakdown_ms"][phase] for run in runs])
        axis.barh(labels, values, left=bottom, label=phase)
        bottom += values
    axis.scatter([run["latency"]["p95"] for run in runs], labels, marker="|", s=300, color="black", label="p95",
                 zorder=3)
    axis.scatter([run["floor"]["p50"] for run in runs], labels, marker="x", color="red",
                 label="SQL floor p50", zorder=3)
    axis.set(xlabel="milliseconds (bars: mean by phase)", title="Composed search over REST: where the time goes")
    axis.invert_yaxis()
    axis.legend(fontsize=7, ncol=4, loc="lower right")
    figure.tight_layout()
    figure.savefig(RESULTS_DIR / f"{name}.png", dpi=120)


def _throughput_ratio(run, runs):
    """Queries/s of ``run`` over the unbatched worker's with the same catalog and clients ("-" without one)."""
    base = next((r for r in runs if (r["size"], r["clients"], r["worker"]) == (run["size"], run["clients"],
                                                                               "unbatched")), None)
    return run["qps"] / base["qps"] if base else "-"


def report(data):
    setup, runs = data["setup"], data["runs"]
    lines = [
        "# Composed (Pic2Word) search latency over REST\n",
        f"`POST /api/search/composed/` with a product and a change in words (k = 20), gunicorn and the query "
        f"worker from the Procfile (`batched`: `--pool threads --concurrency 8`, the queries that arrive together "
        f"encoded together; `unbatched`, the baseline in the same run: `--pool solo`, one query at a time), "
        f"CPU only, {setup['cores']} cores, OMP_WAIT_POLICY "
        f"{setup['omp_wait_policy']}; {setup['queries']} measured queries per row after {setup['warmup']} of "
        f"warm-up. Model {setup['model']}. Catalog: {setup['seed_products']} products with the model's "
        "embeddings of their generated "
        f"images, the rest copies of those vectors with Gaussian noise ({setup['noise']} per unit vector); HNSW "
        "index built by the app's `ensure_hnsw_index`. The SQL floor is the ranking's statements alone, replayed "
        "on one connection.\n",
        markdown_table(
            ["products", "clients", "query worker", "p50 ms", "p95 ms", "p99 ms", "queries/s", "vs unbatched",
             "SQL floor p50 ms", "p95 / floor", "load"],
            [[run["size"], run["clients"], run["worker"], run["latency"]["p50"], run["latency"]["p95"],
              run["latency"]["p99"], run["qps"], _throughput_ratio(run, runs), run["floor"]["p50"], run["ratio_p95"],
              run["load_average"]] for run in runs]),
        "\n`load`: the machine's 1-minute load average when the row started (other agents' jobs included).\n",
        "\n## Where the time goes (mean ms per query, from the Server-Timing header)\n",
        "`encode`: the worker's encoding (Pic2Word text tower, the reference's stored features); `queue`: the "
        "rest of the round trip to the worker (broker, result backend, waiting for the worker or the batch); `sql`: "
        "`nearest_products` in the view; `serialize`: loading and serialising the page; `view_other`: the rest "
        "of the view (parameters, reference and model lookups); `http_other`: what the client saw beyond the "
        "view (HTTP, gunicorn, middleware, JSON rendering, the client itself).\n",
        markdown_table(["products", "clients", "query worker", *PHASES, "mean"],
                       [[run["size"], run["clients"], run["worker"], *(run["breakdown_ms"][p] for p in PHASES),
                         run["mean_ms"]] for run in runs]),
        "\nCatalog builds: " + ", ".join(f"{size}: insert {b['insert_s']:.0f} s, HNSW build {b['index_build_s']:.0f} s"
                                         for size, b in data["builds"].items()) + ".\n",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

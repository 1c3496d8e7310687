"""Scale: a million vectors of the demo model's dimension, as halfvec and as vector.

What is measured, and why: the app stores every embedding as ``halfvec`` (2 bytes a
value) with an HNSW index. This benchmark loads the same vectors into two plain tables,
``halfvec(dim)`` and ``vector(dim)`` (4 bytes a value), and compares, as ratios
halfvec / vector measured in the same run:

- load time: binary COPY through psycopg 3 with pgvector's psycopg adapters;
- HNSW build time (the shipped m and ef_construction; maintenance_work_mem large enough
  for both graphs, see ``--build-memory``; parallel maintenance workers set; pgvector's
  notice when a graph outgrows the memory is recorded);
- table and index size, in all and per product;
- query latency p50/p95 at the shipped ef_search (each HNSW query also as a ratio to an
  exact scan of the same table), and Recall@10 against brute force in numpy.

The vectors are clustered like real embeddings, not uniform: rendered demo products
embedded with the shipped demo CLIP are the centres of a Gaussian mixture
(``_vectors.clustered_vectors``); the queries are drawn from the same mixture and are not
in the tables. The tables are dropped at the end unless ``--keep``.

Run inside the embedded services: ``bench/run scale``; a quick run:
``P2W_VAR_DIR=$PWD/var/bench-index-smoke python -m shop_demo.services -- python -m bench.scale
--size 20000 --out /tmp/bench-smoke``.
"""

import argparse
import os
import sys
import time

import numpy as np

from bench import _vectors

K = 10
# (column type, HNSW operator class): cosine, as the app's index.
KINDS = (("halfvec", "halfvec_cosine_ops"), ("vector", "vector_cosine_ops"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="vectors in each table")
    parser.add_argument("--queries", type=int, default=500, help="queries for latency and recall")
    parser.add_argument("--exact-queries", type=int, default=10, help="queries for the exact-scan baseline")
    parser.add_argument("--centres", type=int, default=2000, help="demo products whose embeddings are the centres")
    parser.add_argument("--noise", type=float, default=0.3, help="norm of the noise around a centre")
    # pgvector 0.8.5 needs about 1,000 bytes a halfvec(128) row and 1,270 a vector(128) row for the graph
    # (its notice at 100k rows with 64MB): the app's 1GB holds 1M halfvec rows but only ~840k vector rows,
    # and a build that spills is several times slower, so the default is what fits both.
    parser.add_argument("--build-memory", default="2GB", help="maintenance_work_mem for the HNSW builds")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="max_parallel_maintenance_workers (the leader builds too)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the tables")
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args(argv)

    _vectors.setup_django()
    from bench.report import RESULTS_DIR, write_results
    from p2w_search.conf import app_settings

    started = time.perf_counter()
    vectors, queries, dim = make_vectors(args)
    config = {
        "size": args.size, "dimensions": dim, "queries": len(queries), "centres": args.centres,
        "noise": args.noise, "hnsw_m": int(app_settings.HNSW_M),
        "hnsw_ef_construction": int(app_settings.HNSW_EF_CONSTRUCTION),
        "maintenance_work_mem": args.build_memory, "app_index_build_memory": app_settings.INDEX_BUILD_MEMORY,
        "max_parallel_maintenance_workers": args.workers, "ef_search": int(app_settings.EF_SEARCH),
    }
    with connect() as conn:
        config["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
        config["pgvector"] = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        tables = {kind: Table(conn, kind, opclass, dim) for kind, opclass in KINDS}
        try:
            results = {kind: {} for kind in tables}
            for kind, table in tables.items():
                say(f"loading {args.size:,} vectors into {table.name}")
                results[kind]["load_s"] = table.load(vectors)
            for kind, table in tables.items():
                say(f"building the HNSW index of {table.name}")
                results[kind].update(table.build(config))
                results[kind].update(table.sizes())
            latency = measure_queries(tables, queries, config["ef_search"], args.exact_queries)
            for kind in tables:
                found = latency[kind].pop("rows")
                results[kind].update(latency[kind])
                results[kind]["recall"] = recall(tables[kind], vectors, queries, found)
        finally:
            if not args.keep:
                for table in tables.values():
                    table.drop()
    data = {"config": config, "results": results,
            "halfvec_vs_vector": {key: results["halfvec"][key] / results["vector"][key]
                                  for key in RATIO_KEYS if results["vector"].get(key)},
            "wall_s": time.perf_counter() - started}
    out = args.out or RESULTS_DIR
    path = write_results("scale", data, markdown(data), out=out)
    say(f"wrote {path} ({data['wall_s']:.0f} s)")


def say(message):
    print(message, file=sys.stderr, flush=True)


def make_vectors(args):
    """Return (vectors [size, dim], queries [queries, dim], dim), unit float32, around demo embeddings."""
    from p2w_search.embedders import get_embedder
    from shop_demo.catalog import generator

    embedder = get_embedder()
    say(f"embedding {args.centres} demo products as the centres")
    centres = _vectors.embed_products(embedder, generator.generate_products(args.centres, seed=args.seed))
    vectors = _vectors.clustered_vectors(centres, args.size, noise=args.noise, seed=args.seed)
    queries = _vectors.clustered_vectors(centres, args.queries, noise=args.noise, seed=args.seed + 1)
    return vectors, queries, centres.shape[1]


def connect():
    """A psycopg 3 connection to the project's database (Django's settings) with pgvector's types."""
    import psycopg
    from django.db import connection
    from pgvector.psycopg import register_vector

    # Django's connection parameters, less its own cursor class and adapters.
    params = {key: value for key, value in connection.get_connection_params().items()
              if key not in ("cursor_factory", "context", "prepare_threshold")}
    conn = psycopg.connect(**params, autocommit=True)
    register_vector(conn)
    return conn


class Table:
    """One plain table ``bench_scale_<kind> (id bigint primary key, embedding <kind>(dim))``."""

    def __init__(self, conn, kind, opclass, dim):
        self.conn, self.kind, self.opclass, self.dim = conn, kind, opclass, dim
        self.name = f"bench_scale_{kind}"
        self.index = f"{self.name}_hnsw"

    def _adapt(self, vector):
        from pgvector import HalfVector, Vector

        return HalfVector(vector) if self.kind == "halfvec" else Vector(vector)

    def load(self, vectors):
        """Create the table and binary-COPY ``vectors`` into it; return the seconds (COPY and commit)."""
        self.drop()
        self.conn.execute(f"CREATE TABLE {self.name} (id bigint PRIMARY KEY, embedding {self.kind}({self.dim}))")
        started = time.perf_counter()
        with self.conn.cursor() as cursor:
            with cursor.copy(f"COPY {self.name} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", self.kind])
                for i, vector in enumerate(vectors):
                    copy.write_row((i, self._adapt(vector)))
        seconds = time.perf_counter() - started
        self.conn.execute(f"VACUUM (ANALYZE) {self.name}")  # the visibility map and statistics of a settled table
        return seconds

    def build(self, config):
        """Build the HNSW index; return its seconds and pgvector's notices (e.g. the graph outgrew memory)."""
        notices = []

        def keep(diagnostic):
            notices.append(diagnostic.message_primary)

        self.conn.add_notice_handler(keep)
        self.conn.execute(f"SET maintenance_work_mem = '{config['maintenance_work_mem']}'")
        self.conn.execute(f"SET max_parallel_maintenance_workers = {int(config['max_parallel_maintenance_workers'])}")
        started = time.perf_counter()
        self.conn.execute(
            f"CREATE INDEX {self.index} ON {self.name} USING hnsw (embedding {self.opclass}) "
            f"WITH (m = {config['hnsw_m']}, ef_construction = {config['hnsw_ef_construction']})")
        seconds = time.perf_counter() - started
        self.conn.execute("RESET maintenance_work_mem")
        self.conn.execute("RESET max_parallel_maintenance_workers")
        self.conn.remove_notice_handler(keep)
        return {"build_s": seconds, "build_notices": notices}

    def sizes(self):
        """Bytes of the table (heap with TOAST), the HNSW index, the primary key and all, and per row."""
        heap, hnsw, total, rows = self.conn.execute(
            "SELECT pg_table_size(%s), pg_relation_size(%s), pg_total_relation_size(%s), count(*) FROM " + self.name,
            [self.name, self.index, self.name]).fetchone()
        return {"table_bytes": heap, "index_bytes": hnsw, "total_bytes": total, "primary_key_bytes": total - heap - hnsw,
                "table_bytes_per_row": heap / rows, "index_bytes_per_row": hnsw / rows, "total_bytes_per_row": total / rows}

    def query_sql(self):
        return f"SELECT id FROM {self.name} ORDER BY embedding <=> %s LIMIT {K}"

    def nearest(self, vector):
        # Not prepared, as Django runs it: a cached plan would survive enable_indexscan = off.
        return [row[0] for row in self.conn.execute(self.query_sql(), [self._adapt(vector)], prepare=False)]

    def drop(self):
        self.conn.execute(f"DROP TABLE IF EXISTS {self.name}")


def measure_queries(tables, queries, ef_search, exact_queries):
    """Latency p50/p95 of the HNSW queries at ``ef_search``, alternating tables query by query so that
    the machine's noise falls on both alike; and of an exact scan (index scans off) as the baseline."""
    from bench.report import percentiles

    for table in tables.values():
        table.conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        for vector in queries[:50]:  # warm: bring the index pages into memory
            table.nearest(vector)
    seconds = {kind: [] for kind in tables}
    rows = {kind: [] for kind in tables}
    for vector in queries:
        for kind, table in tables.items():
            started = time.perf_counter()
            rows[kind].append(table.nearest(vector))
            seconds[kind].append(time.perf_counter() - started)
    exact = {kind: [] for kind in tables}
    conn = next(iter(tables.values())).conn
    conn.execute("SET enable_indexscan = off")
    for vector in queries[:exact_queries]:
        for kind, table in tables.items():
            started = time.perf_counter()
            table.nearest(vector)
            exact[kind].append(time.perf_counter() - started)
    conn.execute("RESET enable_indexscan")
    conn.execute("RESET hnsw.ef_search")
    out = {}
    for kind in tables:
        hnsw, scan = percentiles(seconds[kind], points=(50, 95)), percentiles(exact[kind], points=(50, 95))
        out[kind] = {"query_p50_ms": hnsw["p50"], "query_p95_ms": hnsw["p95"], "exact_p50_ms": scan["p50"],
                     "exact_p95_ms": scan["p95"], "query_p50_vs_exact": hnsw["p50"] / scan["p50"], "rows": rows[kind]}
    return out


def recall(table, vectors, queries, found):
    """Mean Recall@10 of the HNSW answers against brute force over the values the table holds."""
    stored = vectors if table.kind == "vector" else _vectors.as_halfvec_values(vectors)
    stored = _vectors.normalise(stored)
    asked = _vectors.normalise(queries if table.kind == "vector" else _vectors.as_halfvec_values(queries))
    _, truth = _vectors.exact_top_k(stored, asked, K)
    found_sims = np.full((len(found), K), -np.inf, dtype=np.float32)
    for i, ids in enumerate(found):
        found_sims[i, :len(ids)] = stored[ids] @ asked[i]  # ids are row numbers
    return float(_vectors.recall_at_k(found_sims, truth).mean())


RATIO_KEYS = ("load_s", "build_s", "table_bytes", "index_bytes", "total_bytes", "query_p50_ms", "query_p95_ms",
              "exact_p50_ms", "recall")


def markdown(data):
    """The comparison table: halfvec, vector, and halfvec / vector."""
    from bench.report import markdown_table

    c, r, ratio = data["config"], data["results"], data["halfvec_vs_vector"]
    mib = 1024 ** 2
    rows = [
        ("load (binary COPY), s", "load_s", 1), ("HNSW build, s", "build_s", 1),
        ("table, MiB", "table_bytes", mib), ("HNSW index, MiB", "index_bytes", mib),
        ("total with primary key, MiB", "total_bytes", mib),
        (f"query p50 at ef_search {c['ef_search']}, ms", "query_p50_ms", 1),
        (f"query p95 at ef_search {c['ef_search']}, ms", "query_p95_ms", 1),
        ("exact scan p50, ms", "exact_p50_ms", 1), (f"Recall@{K} at ef_search {c['ef_search']}", "recall", 1),
    ]
    table = [[label, r["halfvec"][key] / unit, r["vector"][key] / unit, ratio.get(key, float("nan"))]
             for label, key, unit in rows]
    table += [[f"{what} bytes per product", r["halfvec"][f"{key}_per_row"], r["vector"][f"{key}_per_row"],
               r["halfvec"][f"{key}_per_row"] / r["vector"][f"{key}_per_row"]]
              for what, key in (("table", "table_bytes"), ("index", "index_bytes"), ("total", "total_bytes"))]
    table += [["HNSW query p50 / exact scan p50", r["halfvec"]["query_p50_vs_exact"],
               r["vector"]["query_p50_vs_exact"], r["halfvec"]["query_p50_vs_exact"] / r["vector"]["query_p50_vs_exact"]]]
    notices = [f"- {kind}: {notice}" for kind in r for notice in r[kind]["build_notices"]]
    return "\n".join([
        f"# Scale: {c['size']:,} vectors x {c['dimensions']} dimensions, halfvec against vector",
        "",
        f"PostgreSQL {c['postgres']}, pgvector {c['pgvector']}. Plain tables `(id bigint primary key, embedding "
        f"halfvec|vector({c['dimensions']}))`, loaded by binary COPY (psycopg 3, pgvector's adapters); HNSW "
        f"(cosine) m {c['hnsw_m']}, ef_construction {c['hnsw_ef_construction']}, maintenance_work_mem "
        f"{c['maintenance_work_mem']} (the app's INDEX_BUILD_MEMORY is {c['app_index_build_memory']}), "
        f"max_parallel_maintenance_workers {c['max_parallel_maintenance_workers']}. "
        f"Vectors: a Gaussian mixture around {c['centres']:,} demo-product embeddings of the shipped CLIP (noise "
        f"norm {c['noise']}); {c['queries']} queries from the same mixture, not in the tables, one at a time over "
        "one connection, alternating the tables.",
        "",
        markdown_table(["", "halfvec", "vector", "halfvec / vector"], table),
        "",
        "Index build notices:" if notices else "No index build notice (the graph fit in maintenance_work_mem).",
        *notices,
        "",
    ])


if __name__ == "__main__":
    main()

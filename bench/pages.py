"""What the pages staff, merchants and the API read again and again cost on a real shop's tables.

A catalog of ``--products`` products (two images each, by default) from ``--merchants``
merchants, one of them ten times the others' size; embedding rows under two models (one
serving, nearly all ready; one being built, part ready, part pending, the rest missing);
``--jobs`` import jobs with their images (most ended long ago, a few queued, running, or
ended with images still embedding); a few dozen worker rows, alive and lost. It is written
with SQL (``generate_series``), not by the importer, and no model runs: the vectors are
one random vector repeated, which no page reads.

Each page is requested in this process through Django's test client (the admin's pages as
a superuser, the merchant pages and ``/api/imports/`` as the large merchant's user) and
each command is called; the table gives the median of ``--rounds`` runs in milliseconds and
the SQL queries of one run (``CaptureQueriesContext``), each against the same page with the
round's fixes undone (``--compare``, the default): the indexes of migration 0014 dropped
and the code of before them patched back in, in the same process on the same tables.

    bench/run pages                                     # a smoke run: 2,000 products
    bench/run pages --products 100000 --jobs 5000       # a real shop (python -m bench.pages --help)
"""

import argparse
import contextlib
import statistics
import time
from io import StringIO

from bench._vectors import insert_embedded, random_halfvec_sql

NAME = "pages"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=2000, help="products in the catalog")
    parser.add_argument("--images", type=int, default=2, help="images per product")
    parser.add_argument("--merchants", type=int, default=20, help="merchants (the first has 10%% of the products)")
    parser.add_argument("--jobs", type=int, default=200, help="import jobs, over all merchants")
    parser.add_argument("--workers", type=int, default=30, help="worker rows (two thirds alive)")
    parser.add_argument("--dimensions", type=int, default=512, help="vector dimensions of both models")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each page; the median is reported")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="measure the pages as they are only, not also with this round's fixes undone")
    parser.add_argument("--explain", type=int, default=0, metavar="N",
                        help="print EXPLAIN ANALYZE of each page's N slowest queries")
    parser.add_argument("--keep", action="store_true", help="reuse the database a previous run built")
    args = parser.parse_args(argv)

    from bench import _service

    if args.keep:
        _reuse_database(NAME)
    else:
        _service.bench_database(NAME)
    started = time.monotonic()
    if not args.keep:
        sizes = build(args)
        print(f"built in {time.monotonic() - started:.0f} s: {sizes}", flush=True)
    sizes = table_sizes()
    pages = page_list()
    variants = ["after"] + (["before"] if args.compare else [])
    results, explained = {}, {}
    for variant in variants:
        with fixes_undone() if variant == "before" else contextlib.nullcontext():
            for name, call in pages:
                results.setdefault(name, {})[variant] = measure(call, args.rounds, explain=args.explain,
                                                                label=f"{variant} {name}")
                print(f"{variant:6} {name:45} {results[name][variant]['ms']:9.1f} ms "
                      f"{results[name][variant]['queries']:4d} queries", flush=True)
            for name, plan in plans().items():
                explained.setdefault(name, {})[variant] = plan
                print(f"{variant:6} {name:45} {plan['ms']:9.1f} ms {plan['buffers']:7d} pages", flush=True)
    data = {"setup": {**vars(args), "rows": sizes, "wall_s": time.monotonic() - started}, "pages": results,
            "plans": explained}
    from bench.report import write_results

    print(write_results(NAME, data, report(data)).read_text())


def _reuse_database(name):
    import os
    from urllib.parse import urlsplit

    import django

    os.environ.update({
        "DATABASE_URL": urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/bench_{name}").geturl(),
        "DJANGO_DEBUG": "false",
    })
    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


# The dataset ---------------------------------------------------------------------------------------------------


def build(args):
    """Write the catalog, embeddings, jobs and workers; return the row counts."""
    from django.contrib.auth.models import User
    from django.db import connection

    from p2w_search.models import EmbeddingModel

    products, per_image = args.products, args.images
    merchants = max(args.merchants, 2)
    big = products // 10  # the first merchant's products; the others share the rest in blocks
    per = -(-(products - big) // (merchants - 1))
    User.objects.create_superuser("staff", "staff@example.com", "x")
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO auth_user (username, password, is_superuser, is_staff, is_active, first_name, last_name,
                                   email, date_joined)
            SELECT 'merchant' || m, '!', false, false, true, '', '', '', now() FROM generate_series(1, %s) m""",
                       [merchants])
        cursor.execute("""
            INSERT INTO catalog_merchant (name, slug, user_id)
            SELECT 'Merchant ' || m, 'merchant-' || m, u.id FROM generate_series(1, %s) m
            JOIN auth_user u ON u.username = 'merchant' || m ORDER BY m""", [merchants])
        first = _scalar(cursor, "SELECT min(id) FROM catalog_merchant")
        cursor.execute("""
            INSERT INTO catalog_product (merchant_id, sku, title, description, category, price, currency, in_stock,
                                         listed, created_at)
            SELECT %(first)s + CASE WHEN i <= %(big)s THEN 0 ELSE 1 + (i - %(big)s - 1) / %(per)s END,
                   'SKU-' || i, 'Product ' || i, 'A product of the benchmark.',
                   (ARRAY['dress','sneaker','mug','shirt','bag','lamp','chair','watch'])[1 + i %% 8],
                   (i %% 200) + 0.99, 'EUR', i %% 7 <> 0, i %% 20 <> 0, now() - (i || ' minutes')::interval
            FROM generate_series(1, %(products)s) i ORDER BY i""",
                       {"first": first, "big": big, "per": per, "products": products})
        cursor.execute("""
            INSERT INTO p2w_search_productimage (product_id, file, sha256, position, source_pk, in_index, created_at)
            SELECT p.id, 'p2w/images/2026/11/photo-' || p.id || '-' || k || '.jpg', md5(p.id || '-' || k),
                   k, '', (p.id * 7 + k) %% 100 <> 0, p.created_at
            FROM catalog_product p CROSS JOIN generate_series(0, %s - 1) k ORDER BY p.id, k""", [per_image])
    serving = EmbeddingModel.objects.create(alias="default", architecture="ViT-B-32", weights="bench-serving",
                                            dimensions=args.dimensions, state="serving")
    building = EmbeddingModel.objects.create(alias="next", architecture="ViT-L-14", weights="bench-building",
                                             dimensions=args.dimensions, state="building")
    vector = random_halfvec_sql(args.dimensions)
    with connection.cursor() as cursor:
        # Serving: every image, 2 % failed, the rest ready, made ready over the last days (the newest last minutes).
        insert_embedded(cursor, serving.pk, args.dimensions, at="now() - ((%(n)s - i.id) * 3 || ' seconds')::interval",
                        params={"n": _scalar(cursor, "SELECT max(id) FROM p2w_search_productimage")})
        # Building: 60 % ready (the last of them in the last minutes), 5 % pending, the rest missing.
        cursor.execute(f"""
            INSERT INTO p2w_search_imageembedding (image_id, model_id, state, error, vector, norm, attempts,
                                                   claimed_by, queued_at, updated_at)
            SELECT i.id, %(model)s, CASE WHEN i.id %% 20 < 12 THEN 'ready' ELSE 'pending' END, '',
                   CASE WHEN i.id %% 20 < 12 THEN v.v END, CASE WHEN i.id %% 20 < 12 THEN 9.5 END, 0, '',
                   now() - interval '2 hours', now() - ((%(n)s - i.id) / 5.0 || ' seconds')::interval
            FROM p2w_search_productimage i, {vector} v(v) WHERE i.id %% 20 < 13 ORDER BY i.id""",
                       {"model": building.pk, "n": _scalar(cursor, "SELECT max(id) FROM p2w_search_productimage")})
    jobs = build_jobs(args, first, merchants, big, per, serving)
    build_workers(args.workers)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {"merchants": merchants, "products": products, "images": products * per_image, "jobs": jobs}


def build_jobs(args, first, merchants, big, per, serving):
    """``args.jobs`` jobs: a fifth of them the large merchant's; each names the images of a run of its products.

    Each merchant's newest job ended with its images still embedding (pending under the serving
    model, no final counts); a fifth of the merchants have two uploads waiting before it (queued,
    running); the rest ended long ago,
    with their final counts stored as a poll stores them.
    """
    from django.db import connection

    shares = [max(args.jobs // 5, 1)] + [max((args.jobs - args.jobs // 5) // (merchants - 1), 1)] * (merchants - 1)
    rows = []
    for number, count in enumerate(shares):
        lo = 1 if number == 0 else big + 1 + (number - 1) * per
        hi = big if number == 0 else min(big + number * per, args.products)
        span = max(hi - lo + 1, 1)
        for k in range(count):
            size = 20 + (k * 37) % 180  # products per job
            start = lo + (k * 53) % max(span - size, 1)
            newest = k == count - 1
            state = "done"
            if number % 5 == 0 and k in (count - 2, count - 3):  # a fifth of the merchants have uploads waiting
                state = "running" if k == count - 2 else "queued"
            rows.append(((k + 1) / count, first + number, state, start, min(start + size - 1, hi), newest, k))
    rows = [row[1:] for row in sorted(rows)]  # the merchants' uploads interleaved in time, as they come
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_jobs (n serial, merchant int, state text, lo int, hi int,"
                       " embedding bool, k int)")
        cursor.executemany("INSERT INTO bench_jobs (merchant, state, lo, hi, embedding, k) VALUES (%s, %s, %s, %s,"
                           " %s, %s)", rows)
        cursor.execute("""
            INSERT INTO p2w_search_importjob (owner_id, merchant_key, state, policy, full_sync, manifest, archive,
                rejected_rows, listed_at_upload, rows_total, rows_accepted, rows_rejected, products_unlisted,
                unlisted_skus, errors, errors_total, final_counts, message, created_at, updated_at, started_at,
                ended_at)
            SELECT m.user_id, j.merchant::text, j.state, 'skip', false, 'p2w/imports/2026/11/' || j.n || '/c.csv',
                   'p2w/imports/2026/11/' || j.n || '/images.zip',
                   CASE WHEN j.k %% 4 = 0 THEN 'p2w/imports/2026/11/' || j.n || '/rejected.csv' ELSE '' END, '',
                   j.hi - j.lo + 1 + (j.k %% 4 = 0)::int, j.hi - j.lo + 1, (j.k %% 4 = 0)::int, 0, '[]',
                   CASE WHEN j.k %% 4 = 0 THEN '[{"row": 7, "field": "price", "reason": "not a price"}]'::jsonb
                        ELSE '[]'::jsonb END, (j.k %% 4 = 0)::int, NULL, '',
                   now() - ((%(jobs)s - j.n) || ' hours')::interval, now() - ((%(jobs)s - j.n) || ' hours')::interval,
                   CASE WHEN j.state <> 'queued' THEN now() - ((%(jobs)s - j.n) || ' hours')::interval END,
                   CASE WHEN j.state = 'done' THEN now() - ((%(jobs)s - j.n) || ' hours')::interval END
            FROM bench_jobs j JOIN catalog_merchant m ON m.id = j.merchant ORDER BY j.n""", {"jobs": len(rows)})
        cursor.execute("ALTER TABLE bench_jobs ADD COLUMN job int")
        cursor.execute("""UPDATE bench_jobs b SET job = j.id FROM (SELECT id, row_number() OVER (ORDER BY id) n
                          FROM p2w_search_importjob) j WHERE j.n = b.n""")
        cursor.execute("""
            INSERT INTO p2w_search_importjob_images (importjob_id, productimage_id)
            SELECT b.job, i.id FROM bench_jobs b JOIN p2w_search_productimage i ON i.product_id BETWEEN b.lo AND b.hi
            WHERE b.state <> 'queued'""")
        # The newest job of each merchant: its images still embedding under the serving model.
        cursor.execute("""
            UPDATE p2w_search_imageembedding e SET state = 'pending', vector = NULL, norm = NULL, error = ''
            FROM bench_jobs b JOIN p2w_search_importjob_images ji ON ji.importjob_id = b.job
            WHERE b.embedding AND e.image_id = ji.productimage_id AND e.model_id = %s AND (ji.productimage_id %% 3) = 0
            """, [serving.pk])
        # The others ended long ago: their counts stored, as the first poll after their last image stores them.
        cursor.execute("""
            UPDATE p2w_search_importjob j SET final_counts = jsonb_build_object(
                'images_total', c.total, 'images_embedded', c.ready, 'images_failed', c.failed)
            FROM (SELECT ji.importjob_id job, count(*) FILTER (WHERE i.in_index) total,
                         count(*) FILTER (WHERE i.in_index AND e.state = 'ready') ready,
                         count(*) FILTER (WHERE i.in_index AND e.state = 'failed') failed
                  FROM p2w_search_importjob_images ji JOIN p2w_search_productimage i ON i.id = ji.productimage_id
                  LEFT JOIN p2w_search_imageembedding e ON e.image_id = i.id AND e.model_id = %s
                  GROUP BY ji.importjob_id) c, bench_jobs b
            WHERE j.id = c.job AND b.job = j.id AND NOT b.embedding AND j.state = 'done'""", [serving.pk])
    return len(rows)


def build_workers(count):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO p2w_search_workerprocess (hostname, pid, queues, loaded_models, device, started_at, ready_at,
                                                  seen_at, last_task_at, tasks)
            SELECT 'worker-' || (w %% 6), 1000 + w,
                   CASE WHEN w %% 3 = 0 THEN '["p2w_query"]'::jsonb ELSE '["p2w_bulk"]'::jsonb END,
                   '["ViT-B-32/bench-serving"]', 'cpu', now() - interval '1 day', now() - interval '1 day',
                   CASE WHEN w %% 3 = 2 THEN now() - (w || ' minutes')::interval ELSE now() END, now(), w * 100
            FROM generate_series(1, %s) w""", [count])


def refresh_heartbeats():
    """The alive workers report again (as they do every few seconds), so that they stay alive while we measure."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE p2w_search_workerprocess SET seen_at = now() WHERE pid %% 3 <> 2", [])


def table_sizes():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""SELECT relname, reltuples::bigint FROM pg_class WHERE relname IN ('catalog_product',
            'p2w_search_productimage', 'p2w_search_imageembedding', 'p2w_search_importjob',
            'p2w_search_importjob_images', 'p2w_search_workerprocess', 'catalog_merchant') ORDER BY relname""")
        return dict(cursor.fetchall())


def _scalar(cursor, sql, params=None):
    cursor.execute(sql, params)
    return cursor.fetchone()[0]


# The pages -----------------------------------------------------------------------------------------------------


def page_list():
    """``[(name, call)]``: each call requests one page (asserting its status) or runs one command."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from p2w_search.models import EmbeddingModel, ImportJob
    from shop_demo.catalog.models import Merchant

    staff, merchant = Client(), Client()
    staff.force_login(User.objects.get(username="staff"))
    big = Merchant.objects.order_by("pk").first()
    merchant.force_login(big.user)
    building = EmbeddingModel.objects.get(state="building")
    jobs = ImportJob.objects.filter(merchant_key=str(big.pk))
    embedding = jobs.filter(state="done", final_counts__isnull=True).order_by("-pk").first()
    ended = jobs.filter(final_counts__isnull=False).order_by("-pk").first()

    def get(client, url, expect=200):
        def call():
            response = client.get(url)
            assert response.status_code == expect, (url, response.status_code, response.content[:300])
        return call

    def command(*args):
        def call():
            call_command("p2w_index", *args, stdout=StringIO(), stderr=StringIO())
        return call

    def doctor():
        try:
            command("doctor")()
        except SystemExit:  # exits 1 on an error finding
            pass

    return [
        ("admin: index page", get(staff, "/admin/p2w_search/embeddingmodel/index/")),
        ("admin: embedding models", get(staff, "/admin/p2w_search/embeddingmodel/")),
        ("admin: products", get(staff, "/admin/catalog/product/")),
        ("admin: products, embedding failed", get(staff, "/admin/catalog/product/?embedding=failed")),
        ("admin: products, building model", get(staff, f"/admin/catalog/product/?embedding_model={building.pk}")),
        ("admin: product images", get(staff, "/admin/p2w_search/productimage/")),
        ("admin: product images, failed", get(staff, "/admin/p2w_search/productimage/?embeddings__state=failed")),
        ("admin: import jobs", get(staff, "/admin/p2w_search/importjob/")),
        ("admin: import jobs, running", get(staff, "/admin/p2w_search/importjob/?state__exact=running")),
        ("merchant: home (glance)", get(merchant, "/merchant/")),
        ("merchant: imports", get(merchant, "/merchant/imports/")),
        ("merchant: job page (embedding)", get(merchant, f"/merchant/imports/{embedding.pk}/")),
        ("merchant: progress poll (embedding)", get(merchant, f"/merchant/imports/{embedding.pk}/progress/")),
        ("merchant: progress poll (ended)", get(merchant, f"/merchant/imports/{ended.pk}/progress/")),
        ("api: /api/imports/", get(merchant, "/api/imports/")),
        ("api: /api/imports/ as staff", get(staff, "/api/imports/")),
        ("api: /api/imports/<id>/ (embedding)", get(merchant, f"/api/imports/{embedding.pk}/")),
        ("command: p2w_index status", command("status")),
        ("command: p2w_index doctor", doctor),
    ]


def measure(call, rounds, *, explain=0, label=""):
    """``{"ms": median of rounds, "queries": of the last run, "slowest": [(ms, sql)]}`` of ``call``."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    refresh_heartbeats()
    cache.clear()
    call()  # warm: templates, the first connection
    times = []
    for _ in range(rounds):
        cache.clear()  # a figure cached by another page (or the last run) is not what a first visit pays
        refresh_heartbeats()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
    queries = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
    slowest = sorted(queries, reverse=True)[:3]
    if explain:
        for ms, sql in slowest[:explain]:
            print(f"--- {label}: {ms:.1f} ms\n{sql[:600]}")
            if sql.lstrip().upper().startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                    print("\n".join(row[0] for row in cursor.fetchall()))
    return {"ms": statistics.median(times), "runs_ms": times, "queries": len(queries),
            "query_ms": sum(ms for ms, _ in queries), "slowest": [[ms, sql[:300]] for ms, sql in slowest]}


# This round's indexes (migration 0014), by model.
ROUND_INDEXES = {"ImageEmbedding": ["p2w_emb_model_state_image", "p2w_emb_failed_newest"]}


@contextlib.contextmanager
def fixes_undone():
    """The pages as they were before this round: its indexes dropped, its code patched back; all restored after."""
    from unittest import mock

    from django.apps import apps
    from django.db import connection

    from p2w_search import admin as p2w_admin
    from p2w_search import status
    from p2w_search.api import uploads as api_uploads
    from p2w_search.merchant import views as merchant_views
    from shop_demo.catalog import admin as catalog_admin

    indexes = [(model, index) for name, names in ROUND_INDEXES.items()
               for model in [apps.get_model("p2w_search", name)]
               for index in model._meta.indexes if index.name in names]
    with connection.schema_editor() as editor:
        for model, index in indexes:
            editor.remove_index(model, index)
    try:
        # The lists of jobs without their counts read at once: each job counts its own (image_counts); the
        # admin's without the owners read with the jobs; the index status counting the images once more.
        with (mock.patch.object(p2w_admin, "prefetch_image_counts", list),
              mock.patch.object(p2w_admin.ImportJobAdmin, "list_select_related", False),
              mock.patch.object(merchant_views, "prefetch_progress", list),
              mock.patch.object(api_uploads, "prefetch_progress", list),
              mock.patch.object(catalog_admin.ChoiceFilter, "queryset", _distinct_filter),
              mock.patch.object(status, "index_status", _counting_images_again(status.index_status))):
            yield
    finally:
        with connection.schema_editor() as editor:
            for model, index in indexes:
                editor.add_index(model, index)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE p2w_search_imageembedding")


def _distinct_filter(self, request, queryset):
    """The demo's product admin filter as it was: across the images and embeddings, the copies removed by DISTINCT."""
    from django.contrib.admin.options import IncorrectLookupParameters

    if not self.value():
        return queryset
    if self.value() not in {str(value) for value, _ in self.lookup_choices}:
        raise IncorrectLookupParameters(f"{self.parameter_name} is none of its choices")
    return queryset.filter(**{self.field: self.value()}).distinct()


def _counting_images_again(index_status):
    """``status.index_status`` as it was: the images in the index counted for the page's first line, then again
    by each model's progress."""
    from p2w_search.models import ProductImage

    def before(**kwargs):
        images = ProductImage.objects.filter(in_index=True).count()
        return {**index_status(**kwargs), "images": images}

    return before


def plans():
    """``{query: {"ms", "buffers"}}``: EXPLAIN (ANALYZE, BUFFERS) of the queries the round's indexes serve."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from p2w_search import indexing, status
    from p2w_search.models import EmbeddingModel

    found = {}
    serving = EmbeddingModel.objects.get(state="serving")
    with CaptureQueriesContext(connection) as captured:
        indexing.model_progress(serving)
        status.index_status()
    queries = {
        "a model's counts by state (model_progress)": next(q["sql"] for q in captured.captured_queries
                                                           if "GROUP BY" in q["sql"]),
        "the last errors (index page)": next(q["sql"] for q in captured.captured_queries
                                             if "ORDER BY" in q["sql"] and "'failed'" in q["sql"]),
    }
    with connection.cursor() as cursor:
        for name, sql in queries.items():
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            lines = [row[0] for row in cursor.fetchall()]
            buffers = next((line for line in lines if "Buffers:" in line), "")
            pages = sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", buffers))
            ms = float(next(line for line in lines if line.startswith("Execution Time")).split()[2])
            found[name] = {"ms": ms, "buffers": pages}
    return found


def report(data):
    setup, pages = data["setup"], data["pages"]
    compare = setup["compare"]
    rows = setup["rows"]
    lines = [
        "# What the pages cost on a large shop",
        "",
        f"{rows.get('catalog_product', 0):,} products of {rows.get('catalog_merchant', 0):,} merchants, "
        f"{rows.get('p2w_search_productimage', 0):,} images, {rows.get('p2w_search_imageembedding', 0):,} embedding "
        f"rows under two models, {rows.get('p2w_search_importjob', 0):,} import jobs naming "
        f"{rows.get('p2w_search_importjob_images', 0):,} images, {rows.get('p2w_search_workerprocess', 0)} worker "
        f"rows. Median of {setup['rounds']} requests through Django's test client in one process (ms), and the SQL "
        "queries of one. The merchant pages and the API as the largest merchant (a tenth of the catalog); the job "
        "pages of its newest job, whose images are still embedding.",
        "",
    ]
    if compare:
        header = ["page", "ms", "queries", "before: ms", "before: queries", "ms / before"]
        body = [[name, _ms(r["after"]["ms"]), r["after"]["queries"], _ms(r["before"]["ms"]), r["before"]["queries"],
                 r["after"]["ms"] / r["before"]["ms"]] for name, r in pages.items()]
        lines += ["`before`: the same tables and process, with this round's indexes dropped and its code patched "
                  "back (`fixes_undone` in bench/pages.py).", ""]
    else:
        header = ["page", "ms", "queries"]
        body = [[name, _ms(r["after"]["ms"]), r["after"]["queries"]] for name, r in pages.items()]
    from bench.report import markdown_table

    lines.append(markdown_table(header, body))
    if compare:
        lines += ["", "The queries the new indexes serve, once each (EXPLAIN ANALYZE): their time, and the 8 kB pages "
                      "they read (shared buffers hit or read), which do not depend on the machine's load.", "",
                  markdown_table(["query", "ms", "pages", "before: ms", "before: pages"],
                                 [[name, _ms(p["after"]["ms"]), p["after"]["buffers"], _ms(p["before"]["ms"]),
                                   p["before"]["buffers"]] for name, p in data["plans"].items()])]
    lines += ["", f"Reproduce: `bench/run pages --products {setup['products']} --jobs {setup['jobs']} "
                  f"--merchants {setup['merchants']}`."]
    return "\n".join(lines)


def _ms(value):
    """Milliseconds as a reader takes them in: whole from 100 ms, one decimal below."""
    return round(value) if value >= 100 else round(value, 1)


if __name__ == "__main__":
    main()

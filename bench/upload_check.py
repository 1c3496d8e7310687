"""Time of the merchant page's upload check on a large manifest: the rows it will reject listed, against the
check without them.

The check reads the manifest once (``check_manifest``): the file's problems, the SKUs a full sync
counts, and the rows the import will reject without the database (``RejectedRows``: unreadable,
unknown fields, a SKU missing, invisible or on two rows). Then it reads the merchant's catalog for
the SKUs that look like another written in other letters (``look_alike.foresee``). The baseline,
measured in the same process and rounds (alternating), is the same read without ``RejectedRows``,
as the check was before it; "the file alone" reads it with neither. The manifest is CSV, one row a
product, a share of its SKUs on two rows; the merchant's catalog (``--catalog`` products, written
with SQL in a database of the benchmark's own) holds the file's SKUs, one in a thousand in Cyrillic
letters. Apart: the product API's look-alike query for one write (``look_alike_reason``) on that
catalog, which reads the SKUs outside printable ASCII and the one the SKU is seen as.

    bench/run upload_check --rows 100000 --catalog 100000 --rounds 5
"""

import argparse
import statistics
import time

from bench.report import markdown_table, write_results

NAME = "upload_check"
MODES = ("the file alone", "the SKUs (before)", "the SKUs and the rows rejected",
         "the SKUs, the rows rejected and the catalog's look-alikes (now)")


def manifest(rows, duplicate_every):
    """A CSV manifest of ``rows`` products; every ``duplicate_every``-th row repeats the SKU before it."""
    lines = ["sku,title,category,price"]
    for n in range(1, rows + 1):
        sku = f"SKU-{n - 1 if n % duplicate_every == 0 else n}"
        lines.append(f"{sku},Mug number {n},mug,{n % 90 + 9}.50")
    return ("\n".join(lines) + "\n").encode()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the manifest")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each mode once a round, alternating")
    parser.add_argument("--duplicate-every", type=int, default=100, help="every n-th row repeats a SKU")
    parser.add_argument("--catalog", type=int, default=100_000, help="products of the merchant's catalog")
    args = parser.parse_args(argv)

    from bench._service import bench_database

    bench_database(NAME)
    from django.core.files.uploadedfile import SimpleUploadedFile

    from p2w_search.uploads import look_alike
    from p2w_search.uploads.importer import RejectedRows, check_manifest, import_serializer, known_columns

    merchant = build_catalog(args.catalog)
    data, known, serializer_class = manifest(args.rows, args.duplicate_every), known_columns(), import_serializer()
    seconds, rejected_count = {mode: [] for mode in MODES}, None
    for _ in range(args.rounds):
        for mode in MODES:
            upload = SimpleUploadedFile("catalog.csv", data, content_type="text/csv")
            skus = None if mode == MODES[0] else set()
            rejected = RejectedRows() if mode in MODES[2:] else None
            started = time.perf_counter()
            check_manifest(upload, columns_known=known, skus=skus, rejected=rejected)
            if mode == MODES[3]:
                look_alike.foresee(rejected, serializer_class, merchant)
            seconds[mode].append(time.perf_counter() - started)
            if rejected is not None:
                rejected_count = rejected.count
    writes = api_writes(merchant, args.rounds)
    base = statistics.median(seconds[MODES[1]])
    rows = [{"mode": mode, "median_s": statistics.median(times), "min_s": min(times),
             "ratio": statistics.median(times) / base} for mode, times in seconds.items()]
    for row in rows:
        print(row, flush=True)
    table = markdown_table(["the check reads", "median s", "min s", "x of the check before"],
                           [[r["mode"], r["median_s"], r["min_s"], r["ratio"]] for r in rows])
    write = {index: {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000, "writes": len(times)}
             for index, times in writes.items()}
    print("the product API's look-alike query for one write:", write)
    write_results(NAME, {"rows": rows, "manifest_rows": args.rows, "rows_rejected": rejected_count,
                         "catalog": args.catalog, "rounds": args.rounds, "seconds": seconds, "api_write": write},
                  f"`check_manifest` on a CSV manifest of {args.rows:,} rows ({len(data) / 2**20:.1f} MB; every "
                  f"{args.duplicate_every}th row repeats the SKU before it, so {rejected_count:,} rows are rejected), "
                  f"{args.rounds} rounds, the four readings alternating in one process; the last one also reads the "
                  f"merchant's catalog of {args.catalog:,} products (`look_alike.foresee`).\n\n" + table
                  + "\n\nThe product API's look-alike query for one new plain SKU on that catalog "
                  "(`look_alike_reason`, the index dropped and made again each round):\n\n"
                  + markdown_table(["index of the SKUs outside printable ASCII", "writes", "median ms", "max ms",
                                    "x of without"],
                                   [[index, times["writes"], times["median_ms"], times["max_ms"],
                                     times["median_ms"] / write["without (before)"]["median_ms"]]
                                    for index, times in write.items()]))


def api_writes(merchant, rounds, per_round=20):
    """Seconds of the product API's look-alike query for a new plain SKU, ``{"with (now)": [...], "without (before)":
    [...]}``: each round ``per_round`` writes with the catalog's partial index, then as many without it."""
    from django.db import connection

    from shop_demo.catalog.models import Product

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'catalog_product_unplain_sku'")
        (definition,) = cursor.fetchone()
    times = {"with (now)": [], "without (before)": []}
    for round_ in range(rounds):
        for mode in times:
            if mode == "without (before)":
                with connection.cursor() as cursor:
                    cursor.execute("DROP INDEX catalog_product_unplain_sku")
            for n in range(per_round):
                started = time.perf_counter()
                Product.objects.filter(merchant=merchant).look_alike_reason(f"NEW-{round_}-{n}")
                times[mode].append(time.perf_counter() - started)
        with connection.cursor() as cursor:
            cursor.execute(definition)
    return times


def build_catalog(products):
    """A merchant whose catalog holds ``products`` products, SKU-1, SKU-2, ... (the manifest's), one in a thousand
    written in Cyrillic letters (the SKUs a look-alike check reads); returns the merchant."""
    from django.contrib.auth.models import User
    from django.db import connection

    from shop_demo.catalog.models import Merchant

    merchant = Merchant.objects.create(name="Merchant", slug="merchant", user=User.objects.create_user("merchant"))
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO catalog_product (merchant_id, sku, title, description, category, price, currency, in_stock,
                                         listed, created_at)
            SELECT %s, CASE WHEN i %% 1000 = 0 THEN 'СКУ-' ELSE 'SKU-' END || i,
                   'Product ' || i, '', 'mug', 9.50, 'EUR', true, true, now()
            FROM generate_series(1, %s) i ORDER BY i""", [merchant.pk, products])
        cursor.execute("ANALYZE catalog_product")
    return merchant


if __name__ == "__main__":
    main()

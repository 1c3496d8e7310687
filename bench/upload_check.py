"""Time of the merchant page's upload check on a large manifest: the rows it will reject listed, against the
check without them.

The check reads the manifest once (``check_manifest``): the file's problems, the SKUs a full sync
counts, and the rows the import will reject without the database (``RejectedRows``: unreadable,
unknown fields, a SKU missing, invisible or on two rows). The baseline, measured in the same
process and rounds (alternating), is the same read without ``RejectedRows``, as the check was
before it; "the file alone" reads it with neither. The manifest is CSV, one row a product, a
share of its SKUs on two rows.

    bench/run upload_check --rows 100000 --rounds 5
"""

import argparse
import statistics
import time

from bench.report import markdown_table, write_results

NAME = "upload_check"
MODES = ("the file alone", "the SKUs (before)", "the SKUs and the rows rejected (now)")


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
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile

    from p2w_search.uploads.importer import RejectedRows, check_manifest, known_columns

    data, known = manifest(args.rows, args.duplicate_every), known_columns()
    seconds, rejected_count = {mode: [] for mode in MODES}, None
    for _ in range(args.rounds):
        for mode in MODES:
            upload = SimpleUploadedFile("catalog.csv", data, content_type="text/csv")
            skus = None if mode == MODES[0] else set()
            rejected = RejectedRows() if mode == MODES[2] else None
            started = time.perf_counter()
            check_manifest(upload, columns_known=known, skus=skus, rejected=rejected)
            seconds[mode].append(time.perf_counter() - started)
            if rejected is not None:
                rejected_count = rejected.count
    base = statistics.median(seconds[MODES[1]])
    rows = [{"mode": mode, "median_s": statistics.median(times), "min_s": min(times),
             "ratio": statistics.median(times) / base} for mode, times in seconds.items()]
    for row in rows:
        print(row, flush=True)
    table = markdown_table(["the check reads", "median s", "min s", "x of the check before"],
                           [[r["mode"], r["median_s"], r["min_s"], r["ratio"]] for r in rows])
    write_results(NAME, {"rows": rows, "manifest_rows": args.rows, "rows_rejected": rejected_count,
                         "rounds": args.rounds, "seconds": seconds},
                  f"`check_manifest` on a CSV manifest of {args.rows:,} rows ({len(data) / 2**20:.1f} MB; every "
                  f"{args.duplicate_every}th row repeats the SKU before it, so {rejected_count:,} rows are rejected), "
                  f"{args.rounds} rounds, the three readings alternating in one process.\n\n" + table)


if __name__ == "__main__":
    main()

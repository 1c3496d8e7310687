"""Peak memory of a catalog import by manifest size: constant in rows, not 25 kB a row.

Each size is imported by a fresh process (a bulk worker's task body, ``run_import``), from
a manifest of N rows that each name one small image of a zip; the process reports its
peak resident memory (``VmHWM``). The baseline, measured in the same run, is the same
process that sets Django up and loads the job without importing it. Before the manifest
was streamed, a 100,000-row import took a worker from 1.1 to 3.7 GB.

    bench/run import_memory --rows 2000,20000,100000
"""

import argparse
import io
import os
import subprocess
import sys
import zipfile

from bench import _service
from bench.report import markdown_table, write_results

NAME = "import_memory"
RUN = """
import django, re, sys, time; django.setup()
from p2w_search.models import ImportJob
from p2w_search.uploads import importer
job = ImportJob.objects.get(pk={job})
started = time.monotonic()
if {run}:
    job = importer.run_import(job)
    assert job.state == "done" and job.rows_accepted == job.rows_total, (job.state, job.message)
print(time.monotonic() - started, re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="2000,20000,100000", help="manifest sizes, comma-separated")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.rows.split(",")]
    _service.bench_database(NAME)

    from django.core.files.base import ContentFile
    from PIL import Image

    from p2w_search.models import ImportJob
    from shop_demo.catalog.models import Merchant

    merchant = Merchant.objects.create(name="Bench", slug="bench")
    image = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(image, format="PNG")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.png", image.getvalue())
    rows = []
    for size in sizes:
        manifest = "sku,title,category,price,images\n" + "".join(
            f"S{size}-{n},Product {n} with a title of ordinary length,t-shirt,19.99,a.png\n" for n in range(size))
        job = ImportJob(merchant_key=str(merchant.pk))
        job.manifest.save("catalog.csv", ContentFile(manifest.encode()), save=False)
        job.archive.save("images.zip", ContentFile(archive.getvalue()), save=False)
        job.save()
        _, baseline = measure(job.pk, run=False)
        seconds, peak = measure(job.pk, run=True)
        rows.append({"rows": size, "manifest_mb": len(manifest) / 2**20, "peak_mb": peak, "baseline_mb": baseline,
                     "import_mb": peak - baseline, "kb_per_row": (peak - baseline) * 1024 / size,
                     "seconds": seconds, "rows_per_s": size / seconds})
        print(rows[-1], flush=True)
    table = markdown_table(
        ["rows", "manifest MB", "peak MiB", "baseline MiB", "import's own MiB", "kB a row", "rows/s"],
        [[r["rows"], r["manifest_mb"], r["peak_mb"], r["baseline_mb"], r["import_mb"], r["kb_per_row"],
          r["rows_per_s"]] for r in rows])
    write_results(NAME, {"rows": rows}, "Peak resident memory of `run_import` in a fresh process, by manifest "
                  "size (one 16x16 PNG a row), against the same process without the import.\n\n" + table)


def measure(job_id, *, run):
    output = subprocess.run([sys.executable, "-c", RUN.format(job=job_id, run=run)], env={**os.environ},
                            capture_output=True, text=True)
    if output.returncode:
        raise RuntimeError(output.stderr[-3000:])
    seconds, peak = output.stdout.split()[-2:]
    return float(seconds), int(peak) / 1024


if __name__ == "__main__":
    main()

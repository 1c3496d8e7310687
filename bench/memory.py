"""Peak resident memory of the shop's processes, against a bare Python + Django process.

The processes are the Procfile's, started as a deployment runs them, on a small demo
catalog: the bulk worker (Celery's main process and its pool child, which loads the model)
after embedding the catalog in batches; the query worker (``-P solo``: one process) after
encoding composed queries (by product and by uploaded photo) and text queries; the web
server (gunicorn's master and its workers) after serving those searches. Peak = ``VmHWM``
of ``/proc/<pid>/status``, the kernel's high-water mark of resident memory.

The baseline is measured in the same run with the same settings: a process that only
imports Django and runs ``django.setup()``. For scale, also: bare Python, and that
process with the embedder's model loaded and one batch embedded.

    bench/run memory                      # python -m bench.memory --help for the sizes
"""

import argparse
import io
import os
import subprocess
import sys
import time

from bench import _service
from bench.report import RESULTS_DIR, markdown_table, pyplot, write_results

NAME = "memory"
BARE_PYTHON = "pass"
BARE_DJANGO = "import django; django.setup()"
TORCH_IMPORTED = "import django; django.setup(); import torch"
MODEL_LOADED = """
import django; django.setup()
from shop_demo.catalog import generator
from p2w_search.embedders import get_embedder
products = generator.generate_products({batch}, seed=0)
get_embedder().embed_images([generator.render(p, seed=0) for p in products])
"""
REPORT_PEAK = "\nimport re; print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=int, default=256, help="demo products embedded by the bulk worker")
    parser.add_argument("--searches", type=int, default=30, help="searches of each kind served")
    args = parser.parse_args(argv)
    workdir = _service.bench_database(NAME)

    from django.conf import settings
    from django.core.management import call_command

    from p2w_search import indexing

    started = time.monotonic()
    batch = settings.P2W_SEARCH["EMBEDDERS"]["default"]["BATCH_SIZE"]
    baselines = {
        "bare Python": bare_peak(BARE_PYTHON),
        "bare Python + Django (baseline)": bare_peak(BARE_DJANGO),
        "Python + Django + import torch": bare_peak(TORCH_IMPORTED),
        f"Python + Django + the model, one batch of {batch} embedded": bare_peak(MODEL_LOADED.format(batch=batch)),
    }
    indexing.register_model()
    call_command("load_demo_catalog", size=args.catalog, verbosity=0)  # queues the embedding tasks
    with _service.Procfile(workdir / "logs") as shop:
        bulk = shop.worker("bulk")
        wait_embedded(args.catalog)
        query = shop.worker("query")
        web = shop.web()
        serve_searches(shop.base_url, args.searches)
        processes = {
            "bulk worker: Celery main process": [bulk.pid],
            "bulk worker: pool process (embeds)": bulk.children(),
            "query worker (-P solo)": [query.pid],
            "web: gunicorn master": [web.pid],
            "web: gunicorn worker (largest)": web.children(),
        }
        peaks = {label: max(_service.peak_rss_mb(pid) for pid in pids) for label, pids in processes.items()}
        shared = {label: max(proportional_mb(pid) for pid in pids) for label, pids in processes.items()}
    baseline = baselines["bare Python + Django (baseline)"]
    data = {
        "setup": {"catalog": args.catalog, "searches_each": args.searches, "wall_s": time.monotonic() - started},
        "baseline_mb": baseline, "references_mb": baselines, "peaks_mb": peaks, "pss_now_mb": shared,
        "ratios": {label: peak / baseline for label, peak in peaks.items()},
    }
    plot(peaks, baselines)
    print(write_results(NAME, data, report(data)).read_text())


def bare_peak(code):
    """Peak resident memory (MiB) of a fresh ``python -c code`` with this process's settings."""
    output = subprocess.run([sys.executable, "-c", code + REPORT_PEAK], env={**os.environ},
                            capture_output=True, text=True, check=True).stdout
    return int(output.split()[-1]) / 1024


def proportional_mb(pid):
    """Resident memory now (MiB) with pages shared between processes (a prefork pool's) counted once."""
    import psutil

    return psutil.Process(pid).memory_full_info().pss / 2**20


def wait_embedded(count, timeout=600):
    from p2w_search.models import ImageEmbedding

    deadline = time.monotonic() + timeout
    while ImageEmbedding.objects.filter(state=ImageEmbedding.State.READY).count() < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the catalog was not embedded within {timeout} s")
        time.sleep(0.5)


def serve_searches(base_url, count):
    """Composed searches (by product, by uploaded photo) and text searches through the web server."""
    import requests
    from PIL import Image

    from shop_demo.catalog.models import Product

    ids = list(Product.objects.order_by("pk").values_list("pk", flat=True))
    photo = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(photo, format="JPEG")
    session = requests.Session()
    for i in range(count):
        answers = [
            session.post(f"{base_url}/api/search/composed/", json={"product": ids[i % len(ids)], "text": "in blue"}),
            session.post(f"{base_url}/api/search/composed/", data={"text": "with stripes"},
                         files={"image": ("photo.jpg", photo.getvalue(), "image/jpeg")}),
            session.get(f"{base_url}/api/search/text/", params={"q": "a red striped t-shirt", "k": 50}),
        ]
        for answer in answers:
            answer.raise_for_status()


def plot(peaks, baselines):
    plt = pyplot()

    labels = [*baselines, *peaks]
    values = [*baselines.values(), *peaks.values()]
    figure, axis = plt.subplots(figsize=(9, 3.8))
    axis.barh(labels, values, color=["grey"] * len(baselines) + ["C0"] * len(peaks))
    axis.axvline(baselines["bare Python + Django (baseline)"], color="black", linestyle=":", linewidth=1)
    axis.set(xlabel="peak resident memory (MiB, VmHWM)", title="Peak memory of the shop's processes")
    axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(RESULTS_DIR / f"{NAME}.png", dpi=120)


def report(data):
    baseline = data["baseline_mb"]
    rows = [[label, mb, mb / baseline, ""] for label, mb in data["references_mb"].items()]
    rows += [[label, mb, data["ratios"][label], data["pss_now_mb"][label]] for label, mb in data["peaks_mb"].items()]
    return "\n".join([
        "# Peak resident memory of the shop's processes\n",
        f"Processes from the Procfile, after the bulk worker embedded {data['setup']['catalog']} demo images and "
        f"the web server served {data['setup']['searches_each']} searches of each kind (composed by product, "
        "composed by an uploaded 640x480 photo, text with k = 50) through the query worker. Peak = VmHWM. "
        "The baseline is a bare Python process that runs `django.setup()` with the same settings.\n",
        markdown_table(["process", "peak MiB", "x baseline", "PSS now MiB"], rows),
        "\nPSS counts a page shared by n processes as 1/n in each (Celery's pool is forked from its main "
        "process); the peaks count it in full.",
    ]) + "\n"


if __name__ == "__main__":
    main()

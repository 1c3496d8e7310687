"""Ingest efficiency: images per second from a merchant's upload to searchable, as a share
of what the model alone computes on this machine, both measured in the same run.

What runs is what a shop runs. A catalog import (a CSV manifest and a zip of images drawn
by the demo's generator) is POSTed to ``/api/imports/`` of the real web server (the
Procfile's gunicorn); a bulk worker (the Procfile's Celery line) imports it: every row and
image is validated, then products, files and pending embeddings are written in one
transaction; the bulk workers then embed the images (read, decode, preprocess, forward,
write the vectors to PostgreSQL). The clock runs from the POST until the last image is ready.

The baseline is the limit of the machine: ``encode_image`` alone, on preprocessed tensors
at the embedder's batch size, in as many processes with as many threads as the workers,
measured just before and just after each ingest run. Their ratio says how much of the
machine's compute the pipeline turns into indexed images. One worker process (threads =
cores) and two (threads = cores / 2 each) alternate, so drift in the machine's load hits
both, and each runs with every ``--image-threads`` value (``IMAGE_THREADS`` of the workers).
Finally, in this process: where the time goes under cProfile (the import of a slice of the
catalog and the embedding of a slice, by stage; work in the image threads shows as the wait
for it), the import against a bare bulk INSERT of the rows it writes, the cost of writing
the vectors with and without the HNSW index, and the forward throughput against the batch size.

    bench/run ingest                      # python -m bench.ingest --help for the sizes
    bench/run ingest --image-px 512 --size 800 --repeats 1 --name ingest-512px   # shop-sized JPEGs
"""

import argparse
import cProfile
import csv
import io
import multiprocessing
import os
import pstats
import re
import shutil
import time
import zipfile

from bench import _service
from bench.report import RESULTS_DIR, markdown_table, pyplot, write_results

NAME = "ingest"
# Stages of the profile: (label, file suffix, function names); cumulative times, disjoint by construction.
STAGES = [
    ("image decoding (imaging.load_image)", "p2w_search/imaging.py", {"load_image"}),
    ("preprocessing (resize, normalise)", "torchvision/transforms/transforms.py", {"__call__"}),
    ("forward (encode_image)", "open_clip/model.py", {"encode_image"}),
    ("SQL (all queries)", "django/db/backends/utils.py", {"_execute", "_executemany"}),
    ("file writes (storage)", "django/core/files/storage/filesystem.py", {"_save"}),
    ("row validation (serializers)", "rest_framework/serializers.py", {"to_internal_value"}),
    # The profiler sees this thread only: images decoded and copied in threads.image_threads show as the wait.
    ("waiting for the image threads", "concurrent/futures/_base.py", {"result", "wait"}),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=3000, help="images (one per product) in the measured upload")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="bulk worker processes to compare")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each worker count, alternated")
    parser.add_argument("--probe-seconds", type=float, default=5.0, help="length of one forward-throughput probe")
    parser.add_argument("--profile-size", type=int, default=512, help="images of the in-process profile")
    parser.add_argument("--image-threads", nargs="+", default=["1", "auto"],
                        help="IMAGE_THREADS of the workers to compare ('auto': the default, the process's cores)")
    parser.add_argument("--image-px", type=int, default=64,
                        help="side of the uploaded images: 64 is the generator's PNG, larger a JPEG scaled up")
    parser.add_argument("--omp-wait-policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY of every torch process ('' leaves OpenMP's default, which spins)")
    parser.add_argument("--name", default=NAME,
                        help="results name, e.g. ingest-vit-b-32 for a run with another model (P2W_CLIP_* variables)")
    args = parser.parse_args(argv)
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy  # before torch starts OpenMP, here and in children
    workdir = _service.bench_database(args.name)

    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from p2w_search import indexing
    from p2w_search.conf import app_settings
    from shop_demo.catalog.models import Merchant

    cores = _service.cpu_count()
    model = indexing.register_model()  # as a shop's first deployment does; the workers find it serving
    embedder = indexing.embedder_for(model)
    batch = embedder.batch_size
    user = get_user_model().objects.create_user("bench-merchant")
    merchant = Merchant.objects.create(name="Bench", slug="bench", user=user)
    token = Token.objects.create(user=user).key
    upload = catalog(args.size, prefix="BENCH", px=args.image_px)
    tensors = workdir / "forward-batch.pt"
    save_preprocessed(embedder, upload, batch, tensors)

    runs = []
    started = time.monotonic()
    for repeat in range(args.repeats):
        for workers in args.workers:
            for image_threads in args.image_threads:
                runs.append(measured_run(repeat, workers, image_threads, cores=cores, upload=upload, token=token,
                                         batch=batch, args=args, tensors=tensors, workdir=workdir))
    runs_wall = time.monotonic() - started

    import torch

    torch.set_num_threads(cores)
    sample = catalog(args.profile_size, prefix="PROF", px=args.image_px)
    profile = {
        "import": profile_import(sample, merchant, user),
        "embed": profile_embedding(model, args.profile_size, app_settings.TASK_BATCH_SIZE),
    }
    against_insert = import_against_bare_insert(sample, merchant, user)
    store = store_cost(model, args.profile_size, app_settings.TASK_BATCH_SIZE)
    curve = batch_curve(embedder, tensors, cores)
    # OpenMP threads that spin while waiting lose their turn to any other busy process on the cores.
    wait_policies = [[policy or "default", forward_limit(1, cores, batch, args.probe_seconds, tensors,
                                                         wait_policy=policy)]
                     for policy in ("PASSIVE", "", "PASSIVE", "")]
    data = {
        "setup": {"images": args.size, "image_px": args.image_px, "batch_size": batch,
                  "task_batch_size": app_settings.TASK_BATCH_SIZE, "cores": cores,
                  "omp_wait_policy": args.omp_wait_policy or "default", "model": model.key,
                  "runs_wall_s": runs_wall},
        "runs": runs, "summary": summarise(runs), "profile": profile, "batch_curve": curve,
        "import_against_bare_insert": against_insert, "store": store,
        "wait_policy_forward": {"processes": 1, "threads": cores, "images_per_s": wait_policies,
                                "load_average": os.getloadavg()},
    }
    plot(runs, curve, batch, args.name)
    print(write_results(args.name, data, report(data)).read_text())


def measured_run(repeat, workers, image_threads, *, cores, upload, token, batch, args, tensors, workdir):
    """One ingest run between two forward-only probes of the same processes x threads."""
    threads = max(cores // workers, 1)
    print(f"run {repeat + 1}: {workers} bulk worker(s) x {threads} thread(s), image threads {image_threads}, "
          f"{args.size} images", flush=True)
    reset_catalog()
    load = os.getloadavg()[0]
    before = forward_limit(workers, threads, batch, args.probe_seconds, tensors)
    run = ingest_run(workers, threads, upload, args.size, token=token, batch=batch, px=args.image_px,
                     env={"P2W_IMAGE_THREADS": "" if image_threads == "auto" else image_threads},
                     log_dir=workdir / "logs" / f"run{repeat + 1}-w{workers}-t{image_threads}")
    after = forward_limit(workers, threads, batch, args.probe_seconds, tensors)
    run.update(repeat=repeat + 1, image_threads=image_threads, load_average=load, limit_before=before,
               limit_after=after, limit=(before + after) / 2)
    run["ratio"] = run["images_per_s"] / run["limit"]
    run["embed_ratio"] = run["embed_images_per_s"] / run["limit"]
    print(f"  {run['images_per_s']:.0f} images/s, limit {run['limit']:.0f}/s: ratio {run['ratio']:.2f} "
          f"(embedding phase alone {run['embed_ratio']:.2f}), import {run['import_s']:.2f} s", flush=True)
    return run


def catalog(size, *, prefix, px=64):
    """``(manifest, archive)`` bytes of ``size`` generated products with one image each.

    At 64 px, the generator's PNG; larger, the picture scaled up and saved as a JPEG (quality
    90), as a shop's photos are: decoding and scaling them down costs the pipeline more.
    """
    from PIL import Image

    from shop_demo.catalog import generator
    from shop_demo.catalog.management.commands.load_demo_catalog import png_bytes

    def image_bytes(picture):
        if px == picture.width:
            return png_bytes(picture), "png"
        buffer = io.BytesIO()
        picture.convert("RGB").resize((px, px), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue(), "jpg"

    manifest = io.StringIO()
    rows = csv.writer(manifest)
    rows.writerow(["sku", "title", "description", "category", "price", "in_stock", "images"])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as files:  # PNGs are compressed already
        for product in generator.generate_products(size, seed=0):
            sku = f"{prefix}-{product.index + 1:05d}"
            data, extension = image_bytes(generator.render(product, seed=0))
            rows.writerow([sku, product.title, product.description, product.category, product.price,
                           str(product.in_stock).lower(), f"{sku}.{extension}"])
            files.writestr(f"{sku}.{extension}", data)
    return manifest.getvalue().encode(), archive.getvalue()


def save_preprocessed(embedder, upload, batch, path):
    """Write one batch of the catalog's images, preprocessed as the embedder does, for the probes."""
    import torch
    from PIL import Image

    loaded = embedder.load()
    with zipfile.ZipFile(io.BytesIO(upload[1])) as files:
        names = files.namelist()[:batch]
        images = [Image.open(io.BytesIO(files.read(name))).convert("RGB") for name in names]
    torch.save(torch.stack([loaded.preprocess(image) for image in images]), path)  # [batch, 3, px, px]


def forward_limit(processes, threads, batch, seconds, tensors, *, wait_policy=None):
    """Images/s of ``encode_image`` alone in ``processes`` processes of ``threads`` threads, side by side.

    ``wait_policy`` replaces OMP_WAIT_POLICY in the probes ("" for OpenMP's default).
    """
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    probes = [context.Process(target=_forward_probe, args=(threads, seconds, str(tensors), barrier, results))
              for _ in range(processes)]
    saved = os.environ.get("OMP_WAIT_POLICY")
    if wait_policy is not None:  # spawned processes start with this process's environment
        os.environ.pop("OMP_WAIT_POLICY", None)
        os.environ.update({"OMP_WAIT_POLICY": wait_policy} if wait_policy else {})
    try:
        for probe in probes:
            probe.start()
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)
        os.environ.update({"OMP_WAIT_POLICY": saved} if saved is not None else {})
    rates = [results.get(timeout=300) for _ in probes]
    for probe in probes:
        probe.join()
    return float(sum(rates))


def _forward_probe(threads, seconds, tensors, barrier, results):
    import django

    django.setup()
    import torch

    from p2w_search.embedders import get_embedder

    torch.set_num_threads(threads)
    model = get_embedder().load().model
    images = torch.load(tensors)
    with torch.inference_mode():
        for _ in range(3):
            model.encode_image(images)
        barrier.wait()
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model.encode_image(images)
            count += len(images)
        results.put(count / (time.perf_counter() - started))


def reset_catalog():
    """Empty the catalog, its images and embeddings; the model, merchant and token stay."""
    from django.conf import settings
    from django.db import connection

    from p2w_search.models import ImageEmbedding, ImportJob, ProductImage
    from shop_demo.catalog.models import Product

    tables = ", ".join(m._meta.db_table for m in (ImportJob.images.through, ImportJob, ImageEmbedding, ProductImage,
                                                   Product))
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")
    shutil.rmtree(settings.MEDIA_ROOT / "p2w", ignore_errors=True)


def post_import(base_url, token, upload):
    """POST a catalog to the import endpoint as a merchant; return the job's URL."""
    import requests

    manifest, archive = upload
    response = requests.post(f"{base_url}/api/imports/", headers={"Authorization": f"Token {token}"},
                             files={"manifest": ("catalog.csv", manifest), "archive": ("images.zip", archive)},
                             timeout=120)
    response.raise_for_status()
    return response.json()["url"]


def settled_counts():
    """``(ready, failed)`` embeddings in the database."""
    from django.db.models import Count

    from p2w_search.models import ImageEmbedding

    counts = dict(ImageEmbedding.objects.values_list("state").annotate(n=Count("pk")).order_by())
    return counts.get("ready", 0), counts.get("failed", 0)


def wait_until_indexed(expected, *, since, start, timeout=900, interval=0.1):
    """Poll until ``expected`` images beyond ``since`` (settled_counts) are ready; return [(s, ready)]."""
    ready0, failed0 = since
    timeline = [(0.0, 0)]
    while True:
        ready, failed = settled_counts()
        timeline.append((time.time() - start, ready - ready0))
        if failed > failed0:
            raise RuntimeError(f"{failed - failed0} images failed to embed")
        if ready - ready0 >= expected:
            return timeline
        if time.time() - start > timeout:
            raise RuntimeError(f"only {ready - ready0} of {expected} images ready after {timeout} s")
        time.sleep(interval)


def ingest_run(workers, threads, upload, expected, *, token, batch, px, env, log_dir):
    """Upload the catalog to a fresh web server and ``workers`` bulk workers; time it to the last vector."""
    from p2w_search.models import ImportJob

    env = {**env, "OMP_NUM_THREADS": str(threads)}
    with _service.Procfile(log_dir, env=env) as shop:
        shop.web()
        bulk = [shop.worker("bulk", replica=i + 1) for i in range(workers)]
        # Not measured: a small upload that reaches every worker, so each has loaded the model.
        warm = catalog(2 * workers * batch, prefix="WARM", px=px)
        since = settled_counts()
        post_import(shop.base_url, token, warm)
        wait_until_indexed(2 * workers * batch, since=since, start=time.time())
        offsets = [process.log_path.stat().st_size for process in bulk]

        since = settled_counts()
        start = time.time()
        post_import(shop.base_url, token, upload)
        posted = time.time()
        timeline = wait_until_indexed(expected, since=since, start=start)
        finished = time.time()
        job = ImportJob.objects.latest("pk")
        tasks = [task_runtimes(process.log_path, offset) for process, offset in zip(bulk, offsets)]
    imported = job.updated_at.timestamp()  # the job is saved last when its transaction commits
    total, embed = finished - start, finished - imported
    busy = sum(sum(t.get("embed_batch", [])) for t in tasks)
    return {
        "workers": workers, "threads": threads, "images": expected, "state": job.state,
        "seconds": total, "images_per_s": expected / total, "embed_images_per_s": expected / embed,
        "upload_s": posted - start, "import_s": sum(sum(t.get("run_import", [])) for t in tasks),
        "queued_to_imported_s": imported - posted, "embed_s": embed,
        "embed_tasks": [len(t.get("embed_batch", [])) for t in tasks],
        "worker_busy": busy / (workers * embed),  # share of the embedding phase the workers spent in tasks
        "timeline": timeline[:: max(len(timeline) // 400, 1)],
    }


TASK_LINE = re.compile(r"Task p2w_search\.tasks\.(\w+)\[[^\]]+\] succeeded in ([0-9.]+)s")


def task_runtimes(log_path, offset):
    """``{task name: [seconds]}`` from the worker's log after ``offset`` (Celery logs each task's runtime)."""
    with open(log_path, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    runtimes = {}
    for name, seconds in TASK_LINE.findall(text):
        runtimes.setdefault(name, []).append(float(seconds))
    return runtimes


def profiled(function, *args, setup=None):
    """Run ``function`` under cProfile inside a transaction that is rolled back; return stage seconds.

    ``setup`` runs first in the same transaction, unprofiled.
    """
    from django.db import transaction

    profile = cProfile.Profile()
    with transaction.atomic():  # rolled back: nothing is kept, and no task is sent (on_commit never runs)
        if setup is not None:
            setup()
        started = time.perf_counter()
        profile.runcall(function, *args)
        wall = time.perf_counter() - started
        transaction.set_rollback(True)
    stats = pstats.Stats(profile).stats
    stages = {}
    for label, suffix, names in STAGES:
        stages[label] = sum(entry[3] for (path, _, name), entry in stats.items()
                            if name in names and path.endswith(suffix))
    stages["other (Python, Django, task logic)"] = max(wall - sum(stages.values()), 0.0)
    return {"wall_s": wall, "stages_s": stages}


def uploaded_job(upload, merchant, user):
    """A saved import job of ``upload`` (manifest, archive) by ``user`` for ``merchant``, not yet run."""
    from django.core.files.base import ContentFile

    from p2w_search.models import ImportJob

    job = ImportJob(owner=user, merchant_key=str(merchant.pk))
    job.manifest.save("catalog.csv", ContentFile(upload[0]), save=False)
    job.archive.save("images.zip", ContentFile(upload[1]), save=False)
    job.save()
    return job


def profile_import(upload, merchant, user):
    """Profile ``importer.run_import`` of an uploaded catalog, in this process."""
    from p2w_search.uploads import importer

    result = profiled(importer.run_import, uploaded_job(upload, merchant, user))
    result["images"] = int(upload[0].count(b"\n") - 1)
    return result


def import_against_bare_insert(upload, merchant, user, repeats=3):
    """Seconds per row of ``importer.run_import`` and of a bare bulk INSERT of the rows it writes.

    The bare INSERT writes the same products, image rows and pending embeddings with
    ``bulk_create`` and nothing else: no validation, no image decoded or copied, no file.
    Each is timed (best of ``repeats``) in a transaction that is rolled back.
    """
    from django.db import transaction

    from p2w_search import indexing
    from p2w_search.models import ImageEmbedding, ProductImage
    from p2w_search.uploads import importer
    from shop_demo.catalog.models import Product

    manifest = list(csv.DictReader(io.StringIO(upload[0].decode())))
    model = indexing.active_models()[0]

    def bare():
        products = Product.objects.bulk_create([
            Product(merchant=merchant, sku=row["sku"], title=row["title"], description=row["description"],
                    category=row["category"], price=row["price"], in_stock=row["in_stock"] == "true")
            for row in manifest])
        images = ProductImage.objects.bulk_create([
            ProductImage(product=product, position=0, file=f"p2w/images/bench/{row['images']}", sha256="0" * 64)
            for product, row in zip(products, manifest)])
        ImageEmbedding.objects.bulk_create([ImageEmbedding(image=image, model=model) for image in images])

    def run_import():
        importer.run_import(uploaded_job(upload, merchant, user))

    def best(function):
        times = []
        for _ in range(repeats):
            with transaction.atomic():
                started = time.perf_counter()
                function()
                times.append(time.perf_counter() - started)
                transaction.set_rollback(True)
        return min(times) / len(manifest)

    result = {"rows": len(manifest), "import_s_per_row": best(run_import), "bare_insert_s_per_row": best(bare)}
    result["ratio"] = result["import_s_per_row"] / result["bare_insert_s_per_row"]
    return result


def store_cost(model, size, task_batch):
    """Seconds per image of writing the vectors (``indexing._store_ready``), with and without the HNSW index.

    The same ``size`` rows of the last run are set pending and stored again in batches of
    ``task_batch``, in a transaction that is rolled back (the index comes back with it).
    """
    import numpy as np
    from django.db import connection, transaction

    from p2w_search import index, indexing
    from p2w_search.models import ImageEmbedding

    rows = list(ImageEmbedding.objects.filter(model=model).select_related("image").order_by("pk")[:size])
    ids = [row.pk for row in rows]
    features = np.random.default_rng(0).standard_normal((task_batch, model.dimensions)).astype(np.float32)
    result = {}
    with transaction.atomic():
        for label in ("with_hnsw_s_per_image", "without_hnsw_s_per_image"):
            if label.startswith("without"):
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP INDEX {index.hnsw_index_name(model)}")
            ImageEmbedding.objects.filter(pk__in=ids).update(state=ImageEmbedding.State.PENDING)
            started = time.perf_counter()
            for start in range(0, len(ids), task_batch):
                part = rows[start:start + task_batch]
                indexing._store_ready(part, features[:len(part)])
            result[label] = (time.perf_counter() - started) / len(ids)
        transaction.set_rollback(True)
    return result


def profile_embedding(model, size, task_batch):
    """Profile ``indexing.embed_pending`` over ``size`` images of the last run, task by task, in this process."""
    from p2w_search import indexing
    from p2w_search.models import ImageEmbedding

    ids = list(ImageEmbedding.objects.filter(model=model).order_by("pk").values_list("pk", flat=True)[:size])

    def embed_all():
        for start in range(0, len(ids), task_batch):
            indexing.embed_pending(model.pk, ids[start:start + task_batch])

    result = profiled(embed_all, setup=lambda: ImageEmbedding.objects.filter(pk__in=ids).update(
        state=ImageEmbedding.State.PENDING, claimed_by=""))
    result["images"] = len(ids)
    return result


def batch_curve(embedder, tensors, threads, sizes=(1, 4, 8, 16, 32, 64, 128), seconds=2.0):
    """Forward throughput (images/s) against the batch size, in this process with ``threads`` threads."""
    import torch

    model = embedder.load().model
    images = torch.load(tensors)
    images = images.repeat((max(sizes) + len(images) - 1) // len(images), 1, 1, 1)
    curve = {}
    with torch.inference_mode():
        for size in sizes:
            model.encode_image(images[:size])
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                model.encode_image(images[:size])
                count += size
            curve[size] = count / (time.perf_counter() - started)
    return curve


def configuration(run):
    return f"{run['workers']} worker(s), image threads {run['image_threads']}"


def summarise(runs):
    """Mean figures per configuration (workers, image threads)."""
    summary = {}
    for name in dict.fromkeys(configuration(run) for run in runs):
        mine = [run for run in runs if configuration(run) == name]
        summary[name] = {key: sum(run[key] for run in mine) / len(mine)
                         for key in ("ratio", "embed_ratio", "images_per_s", "limit", "worker_busy", "import_s")}
        summary[name]["ratios"] = [run["ratio"] for run in mine]
    return summary


def plot(runs, curve, batch, name=NAME):
    plt = pyplot()

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {name: f"C{index}" for index, name in enumerate(dict.fromkeys(configuration(run) for run in runs))}
    for run in runs:
        seconds, ready = zip(*run["timeline"])
        colour = colours[configuration(run)]
        left.plot(seconds, ready, color=colour, alpha=0.8,
                  label=f"{configuration(run)}, run {run['repeat']}: ratio {run['ratio']:.2f}")
        left.plot([0, run["images"] / run["limit"]], [0, run["images"]], color=colour, linestyle=":", linewidth=1)
    left.set(xlabel="seconds since the upload", ylabel="images indexed",
             title="Upload to indexed (dotted: the forward-only limit)")
    left.legend(fontsize=7)
    sizes = list(curve)
    right.plot(sizes, [curve[s] for s in sizes], marker="o")
    right.axvline(batch, color="grey", linestyle="--", label=f"BATCH_SIZE {batch}")
    right.set(xscale="log", xlabel="batch size", ylabel="images/s (encode_image only)",
              title="Forward throughput against the batch size")
    right.legend()
    figure.tight_layout()
    figure.savefig(RESULTS_DIR / f"{name}.png", dpi=120)


def report(data):
    setup, runs = data["setup"], data["runs"]
    lines = [
        "# Ingest efficiency: upload to indexed, against the forward-only limit\n",
        f"{setup['images']} generated {setup['image_px']} px {'PNG' if setup['image_px'] == 64 else 'JPEG'} images "
        "(one per product), uploaded as one catalog import "
        f"(CSV + zip) through `/api/imports/`; gunicorn and Celery bulk workers started from the Procfile; "
        f"model {setup['model']}, BATCH_SIZE {setup['batch_size']}, TASK_BATCH_SIZE {setup['task_batch_size']}, "
        f"OMP_WAIT_POLICY {setup['omp_wait_policy']}, {setup['cores']} cores. The limit is `encode_image` alone "
        "on preprocessed tensors in the same processes x threads, measured before and after each run.\n",
        markdown_table(
            ["run", "workers x threads", "image threads", "images/s", "limit/s", "**ratio**",
             "embedding phase ratio", "upload s", "import s", "embed s", "worker busy", "load"],
            [[run["repeat"], f"{run['workers']} x {run['threads']}", run["image_threads"], run["images_per_s"],
              run["limit"],
              run["ratio"], run["embed_ratio"], run["upload_s"], run["import_s"], run["embed_s"],
              run["worker_busy"], run["load_average"]] for run in runs]),
        "\nMeans: " + "; ".join(f"{name}: ratio {s['ratio']:.2f} (embedding phase {s['embed_ratio']:.2f}), "
                                 f"import {s['import_s']:.2f} s" for name, s in data["summary"].items())
        + ". Goals (issue 11): upload to indexed 0.5, embedding phase 0.7.\n",
        "## Where the time goes (in this process, under cProfile; shares of the wall time)\n",
    ]
    for part, result in data["profile"].items():
        stages = result["stages_s"]
        lines.append(f"**{part}** of {result['images']} images: {result['wall_s']:.2f} s "
                     f"({result['images'] / result['wall_s']:.0f} images/s under the profiler)\n")
        lines.append(markdown_table(["stage", "s", "share"],
                                    [[label, s, f"{100 * s / result['wall_s']:.0f} %"]
                                     for label, s in stages.items() if s > 0]) + "\n")
    bare = data["import_against_bare_insert"]
    lines.append(f"**The import against a bare bulk INSERT** of the same {bare['rows']} rows (products, image rows, "
                 f"pending embeddings; best of 3, rolled back): import {1000 * bare['import_s_per_row']:.2f} ms a row, "
                 f"bare INSERT {1000 * bare['bare_insert_s_per_row']:.3f} ms a row: {bare['ratio']:.0f}x. The "
                 "difference is the import's work: every row validated, every image decoded, checked, copied and "
                 "written.\n")
    store = data["store"]
    lines.append(f"**Writing the vectors** (`indexing._store_ready`, batches of {setup['task_batch_size']}): "
                 f"{1000 * store['with_hnsw_s_per_image']:.3f} ms an image with the HNSW index, "
                 f"{1000 * store['without_hnsw_s_per_image']:.3f} ms without it; the forward pass costs "
                 f"{1000 / max(data['batch_curve'].values()):.3f} ms an image at its best batch. PostgreSQL "
                 "runs on the same cores.\n")
    policies = data["wait_policy_forward"]
    lines.append(f"OMP_WAIT_POLICY and the forward-only throughput, 1 process x {policies['threads']} threads, "
                 "probes in turn: " + ", ".join(
                     f"{policy} {rate:.0f} images/s" for policy, rate in policies["images_per_s"])
                 + f" (machine load {policies['load_average'][0]:.1f}; load = 1-minute load average, "
                 "other processes included).\n")
    curve = data["batch_curve"]
    lines.append("Forward throughput against the batch size (images/s, one process, all cores): "
                 + ", ".join(f"{size}: {rate:.0f}" for size, rate in curve.items()) + ".\n")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

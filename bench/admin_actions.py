"""The admin's three index actions on a whole large catalog ("select all"), as one staff request each.

A catalog of ``--products`` products with one image each (rows only, written with SQL: no file is
read when images are queued), 5 % of the products unlisted, 1 % of the images out of the index;
one serving model, its rows 98 % ready (one random vector repeated) and 2 % failed. No HNSW index:
with one, every re-queued row that keeps its vector is inserted into it again, old code and new alike.

Each action ("Embed again", "Retry the failed", "Remove from the index") is posted with Django's
"select all" (``select_across``) on the product admin and on the image admin, through the test
client as a superuser; the tasks go to the real Redis (no worker takes them). Reported: the
request's time, its SQL queries, the tasks sent, the message, and each against the same request
with the code before this change patched back in (``before``), on the same tables in the same run.

``--cutoff``: the same requests in a child process killed (SIGKILL, as a web server's timeout)
at a share of the time the request took; then what the database holds, what Redis holds, and
what the sweep makes of it.

    bench/run admin_actions                       # 70,000 products
    bench/run admin_actions --products 5000       # a smoke run
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time

from bench._vectors import insert_embedded

NAME = "admin_actions"
ACTIONS = ["reembed", "retry_failed", "remove_from_index"]
ADMINS = {"product": "/admin/catalog/product/", "image": "/admin/p2w_search/productimage/"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=70000)
    parser.add_argument("--dimensions", type=int, default=512)
    parser.add_argument("--cutoff", type=float, nargs="*", default=[0.5, 0.9],
                        help="kill the request at these shares of its measured time (none: no cut-off runs)")
    parser.add_argument("--no-compare", dest="compare", action="store_false")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "ADMIN", "ACTION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)

    from bench import _service

    _service.bench_database(NAME)
    started = time.monotonic()
    build(args)
    print(f"built in {time.monotonic() - started:.0f} s", flush=True)
    variants = ["after"] + (["before"] if args.compare else [])
    results = {}
    for variant in variants:
        for admin_name in ADMINS:
            for action in ACTIONS:
                reset(args)
                with old_code() if variant == "before" else contextlib.nullcontext():
                    row = measure(admin_name, action)
                row["state"] = db_state()
                results.setdefault(f"{admin_name} {action}", {})[variant] = row
                print(f"{variant:6} {admin_name:7} {action:18} {row['ms']:9.0f} ms {row['queries']:6d} queries "
                      f"{row['tasks']:5d} tasks  {row['message']}", flush=True)
    cutoffs = {}
    for variant in variants:
        for admin_name in ADMINS:
            for action in ACTIONS:
                took = results[f"{admin_name} {action}"][variant]["ms"] / 1000
                for share in args.cutoff:
                    reset(args)
                    row = cut_off(variant, admin_name, action, took * share)
                    cutoffs.setdefault(f"{admin_name} {action}", {}).setdefault(variant, {})[str(share)] = row
                    print(f"{variant:6} {admin_name:7} {action:18} killed at {row['killed_at_s']:.1f} s: "
                          f"{row['after_kill']} / queue {row['queued_messages']}; sweep: {row['after_sweep']}",
                          flush=True)
    data = {"setup": {**vars(args), "wall_s": time.monotonic() - started}, "actions": results, "cutoffs": cutoffs}
    from bench.report import write_results

    print(write_results(NAME, data, report(data)).read_text())


# The dataset ---------------------------------------------------------------------------------------------------


def build(args):
    from django.contrib.auth.models import User
    from django.db import connection

    from p2w_search.models import EmbeddingModel

    User.objects.create_superuser("staff", "staff@example.com", "x")
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO auth_user (username, password, is_superuser, is_staff, is_active, first_name, "
                       "last_name, email, date_joined) VALUES ('merchant', '!', false, false, true, '', '', '', now())")
        cursor.execute("INSERT INTO catalog_merchant (name, slug, user_id) "
                       "SELECT 'Merchant', 'merchant', id FROM auth_user WHERE username = 'merchant'")
        cursor.execute("""
            INSERT INTO catalog_product (merchant_id, sku, title, description, category, price, currency, in_stock,
                                         listed, created_at)
            SELECT (SELECT id FROM catalog_merchant), 'SKU-' || i, 'Product ' || i, 'A product.', 'mug',
                   (i %% 200) + 0.99, 'EUR', true, i %% 20 <> 0, now() - (i || ' minutes')::interval
            FROM generate_series(1, %s) i ORDER BY i""", [args.products])
        cursor.execute("""
            INSERT INTO p2w_search_productimage (product_id, file, sha256, position, source_pk, in_index, created_at)
            SELECT p.id, 'p2w/images/photo-' || p.id || '.jpg', md5(p.id::text), 0, '', true,
                   now() - interval '1 day'
            FROM catalog_product p ORDER BY p.id""")
    EmbeddingModel.objects.create(alias="default", architecture="ViT-B-32", weights="bench",
                                  dimensions=args.dimensions, state="serving")


def reset(args):
    """The catalog as built: 1 % of the images out of the index, the others embedded (2 % failed)."""
    from django.db import connection

    from bench._service import flush_redis
    from p2w_search.models import EmbeddingModel

    model = EmbeddingModel.objects.get()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE p2w_search_imageembedding")
        cursor.execute("UPDATE p2w_search_productimage SET in_index = id % 100 <> 0")
        insert_embedded(cursor, model.pk, args.dimensions, where="i.in_index", at="now() - interval '2 hours'")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE p2w_search_imageembedding")
        cursor.execute("VACUUM ANALYZE p2w_search_productimage")
    flush_redis()


def db_state():
    from django.db.models import Count

    from p2w_search.models import ImageEmbedding, ProductImage

    states = dict(ImageEmbedding.objects.values_list("state").annotate(n=Count("id")).order_by())
    return {**{state: states.get(state, 0) for state in ("ready", "pending", "failed")},
            "queued_at_recent": ImageEmbedding.objects.filter(queued_at__gt=_minutes_ago(10)).count(),
            "out_of_index": ProductImage.objects.filter(in_index=False).count()}


def _minutes_ago(minutes):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(minutes=minutes)


def queue_length():
    import redis
    from django.conf import settings

    from p2w_search.conf import app_settings

    url = settings.REDIS_URL.replace("redis+socket://", "unix://")
    return redis.Redis.from_url(url).llen(app_settings.BULK_QUEUE)


# One request ---------------------------------------------------------------------------------------------------


def post(admin_name, action):
    """The request "select all N" and the action make: the page's first 100 ids, and ``select_across``."""
    from django.contrib.messages import get_messages
    from django.test import Client

    from p2w_search.models import ProductImage
    from shop_demo.catalog.models import Product

    model = Product if admin_name == "product" else ProductImage
    client = Client()
    client.force_login(_staff())
    first = list(model.objects.order_by("-pk").values_list("pk", flat=True)[:100])
    response = client.post(ADMINS[admin_name], {"action": action, "select_across": "1", "index": "0",
                                                "_selected_action": first})
    assert response.status_code == 302, response.content[:300]
    return [str(message) for message in get_messages(response.wsgi_request)]


def _staff():
    from django.contrib.auth.models import User

    return User.objects.get(username="staff")


def measure(admin_name, action):
    from celery import current_app
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sent = []
    send_task = current_app.send_task

    def counting(name, *args, **kwargs):
        sent.append(name)
        return send_task(name, *args, **kwargs)

    current_app.send_task = counting
    try:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            messages = post(admin_name, action)
            ms = (time.perf_counter() - started) * 1000
    finally:
        del current_app.send_task
    return {"ms": ms, "queries": len(captured.captured_queries), "tasks": len(sent), "queued_messages": queue_length(),
            "message": " ".join(messages)}


def child(variant, admin_name, action):
    import django

    django.setup()
    with old_code() if variant == "before" else contextlib.nullcontext():
        post(admin_name, action)
    print("done", flush=True)


def cut_off(variant, admin_name, action, after_s):
    """The request in a child process, killed after ``after_s`` seconds; the state then, and after the sweep."""
    from django.db import connection

    from p2w_search import indexing

    connection.close()
    proc = subprocess.Popen([sys.executable, "-m", "bench.admin_actions", "--child", variant, admin_name, action],
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE",
                                                                                        "shop_demo.settings")},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started = time.monotonic()
    try:
        proc.wait(timeout=after_s + 2.0)  # Python's start and Django's setup: about 2 s before the request
        finished = True
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        finished = False
    killed_at = time.monotonic() - started
    time.sleep(1.0)  # the server notices the dropped connection and rolls its transaction back
    after_kill = db_state()
    queued = queue_length()
    indexing.sweep_pending(older_than=0)  # what the sweep does once SWEEP_AFTER has passed
    return {"killed_at_s": killed_at, "finished": finished, "after_kill": after_kill, "queued_messages": queued,
            "after_sweep": {**db_state(), "queued_messages": queue_length()}}


# The code before this change -----------------------------------------------------------------------------------


@contextlib.contextmanager
def old_code():
    """The admin's actions and indexing's functions as they were, patched in (and out again)."""
    from django.contrib import admin
    from django.db.models import Q

    from p2w_search import admin as p2w_admin
    from p2w_search import indexing
    from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage

    def images(self, queryset):
        if issubclass(queryset.model, ProductImage):
            chosen = Q(pk__in=queryset.values("pk"))
        else:
            chosen = Q(product__in=queryset.values("pk"))
        return list(ProductImage.objects.select_for_update().filter(chosen).order_by("pk"))

    def queue_images(images):
        image_ids = [image.pk for image in images if image.in_index]
        if not image_ids:
            return
        models = list(indexing.active_models())
        ImageEmbedding.objects.filter(image_id__in=image_ids).exclude(model__in=models).delete()
        for model in models:
            ImageEmbedding.objects.bulk_create(
                [ImageEmbedding(image_id=pk, model=model) for pk in image_ids], ignore_conflicts=True)
            rows = ImageEmbedding.objects.filter(model=model, image_id__in=image_ids)
            rows.update(state=ImageEmbedding.State.PENDING, error="", attempts=0)
            indexing._queue(model, list(rows.values_list("pk", flat=True)))

    def retry_failed(images):
        failed = ImageEmbedding.objects.filter(image__in=images, state=ImageEmbedding.State.FAILED,
                                               model__in=indexing.active_models(), image__in_index=True)
        count = 0
        for model in EmbeddingModel.objects.filter(pk__in=failed.values("model_id")):
            rows = failed.filter(model=model)
            ids = list(rows.values_list("pk", flat=True))
            rows.update(state=ImageEmbedding.State.PENDING, error="", attempts=0)
            indexing._queue(model, ids)
            count += len(ids)
        return count

    def remove_from_index(images):
        ids = [image.pk for image in images]
        ProductImage.objects.filter(pk__in=ids).update(in_index=False)
        return ImageEmbedding.objects.filter(image_id__in=ids).delete()[0]

    @admin.action(description="Embed the selected images again", permissions=["manage_index"])
    def reembed(self, request, queryset):
        chosen = images(self, queryset)
        queue_images(chosen)
        self.message_user(request, f"Queued {len(chosen)} images.")

    @admin.action(description="Retry the failed embeddings of the selected images", permissions=["manage_index"])
    def retry(self, request, queryset):
        self.message_user(request, f"Queued {retry_failed(images(self, queryset))} failed embeddings again.")

    @admin.action(description="Remove the selected images from the search index", permissions=["manage_index"])
    def remove(self, request, queryset):
        removed = remove_from_index(images(self, queryset))
        self.message_user(request, f"Removed {removed} vectors; these images are no longer searched.")

    patched = {"reembed": reembed, "retry_failed": retry, "remove_from_index": remove}
    saved = {name: p2w_admin.ImageActions.__dict__[name] for name in patched}
    for name, function in patched.items():
        setattr(p2w_admin.ImageActions, name, function)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(p2w_admin.ImageActions, name, function)


# The report ----------------------------------------------------------------------------------------------------


def report(data):
    from bench.report import markdown_table

    setup = data["setup"]
    rows = []
    for name, variants in data["actions"].items():
        after, before = variants["after"], variants.get("before")
        ratio = f"{after['ms'] / before['ms']:.2f}x" if before else "-"
        rows.append([name, f"{after['ms']:.0f}", after["queries"], after["tasks"], after["message"],
                     f"{before['ms']:.0f}" if before else "-", before["queries"] if before else "-",
                     before["tasks"] if before else "-", ratio])
    text = (f"`bench/run admin_actions --products {setup['products']}`: {setup['products']:,} products, one image "
            "each, 5 % unlisted, 1 % of the images out of the index, 2 % of the embeddings failed; \"select all\" "
            "and one action, as one request of a superuser. ms: the request; tasks: embed_batch messages sent "
            "to Redis.\n\n")
    text += markdown_table(["action", "ms", "queries", "tasks", "message", "before ms", "before queries",
                            "before tasks", "after/before"], rows)
    if data["cutoffs"]:
        cut = []
        for name, variants in data["cutoffs"].items():
            for variant, shares in variants.items():
                for share, row in shares.items():
                    cut.append([name, variant, share, f"{row['killed_at_s']:.1f}", row["finished"],
                                _state(row["after_kill"]) + f", {row['queued_messages']} tasks in Redis",
                                _state(row["after_sweep"]) + f", {row['after_sweep']['queued_messages']} tasks"])
        text += ("\n\nCut off: the request in a child process, SIGKILLed at a share of its measured time (plus "
                 "about 2 s of the child's start); the rows then, and after `sweep_pending(older_than=0)` (the "
                 "sweep once `SWEEP_AFTER` has passed).\n\n")
        text += markdown_table(["action", "code", "share", "killed at s", "finished", "after the kill",
                                "after the sweep"], cut)
    return text


def _state(state):
    return (f"{state['ready']} ready, {state['pending']} pending ({state['queued_at_recent']} queued just now), "
            f"{state['failed']} failed, {state['out_of_index']} out of the index")


if __name__ == "__main__":
    sys.exit(main())

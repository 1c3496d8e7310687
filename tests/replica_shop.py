"""The shop process of tests/test_replica.py: writes on the primary, searches through the REST API.

    DJANGO_SETTINGS_MODULE=tests.replica_settings DATABASE_URL=... DATABASE_REPLICA_URL=... \\
        python -m tests.replica_shop

Reads one JSON command per line on stdin and answers each with one JSON line on stdout
(anything else the process prints goes to stderr). Commands, by ``op``:

- ``add`` ``{"colours": [[r, g, b], ...]}``: a product with one image of each colour; the images
  are pending under the active models, as after an import. Answers ``[{"product", "image"}]``.
- ``hide`` ``{"product"}``: take a product off sale (``listed`` false), as the shop's admin would.
- ``embed``: embed every pending image under every active model, here and now.
- ``register`` / ``switch`` ``{"alias"}``: indexing.register_model / switch_serving.
- ``search`` ``{"method", "path", "data"}``: one API request. Answers its ``status``, ``body``,
  ``model`` (X-P2W-Model) and the queries it sent to each database (``sql``: {alias: [sql]}).
"""

import json
import os
import sys
import traceback


def main():
    # The answers get the real stdout to themselves; stray prints and logs go to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    import django

    django.setup()
    # Load the model now (seconds: torch and open_clip), while the test still makes the replica.
    from p2w_search.embedders import get_embedder

    get_embedder("default").load()
    for line in sys.stdin:
        command = json.loads(line)
        try:
            answer = {"ok": COMMANDS[command.pop("op")](**command)}
        except Exception:  # noqa: BLE001 - the test shows the traceback
            answer = {"error": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    # No more commands: leave at once. Everything is committed, and torch's teardown at exit takes seconds.
    from django.db import connections

    connections.close_all()
    os._exit(0)


def add(colours):
    from tests.factories import ProductFactory, ProductImageFactory, png

    added = []
    for colour in colours:
        image = ProductImageFactory(product=ProductFactory(), data=png(tuple(colour)))
        added.append({"product": image.product_id, "image": image.pk})
    return added


def hide(product):
    from shop_demo.catalog.models import Product

    return Product.objects.filter(pk=product).update(listed=False)


def embed():
    from p2w_search import indexing
    from p2w_search.models import ImageEmbedding

    done = 0
    for model in indexing.active_models():
        indexing.queue_missing(model)
        pending = ImageEmbedding.objects.filter(model=model, state=ImageEmbedding.State.PENDING)
        done += indexing.embed_pending(model.pk, list(pending.values_list("pk", flat=True)))
    return done


def register(alias):
    from p2w_search import indexing

    model = indexing.register_model(alias)
    return {"key": model.key, "state": model.state}


def switch(alias):
    from p2w_search import indexing
    from p2w_search.models import EmbeddingModel

    model = indexing.switch_serving(EmbeddingModel.objects.get(alias=alias))
    return {"key": model.key, "state": model.state}


def search(method, path, data):
    from django.db import connections
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    aliases = list(connections.settings.keys())
    captures = [CaptureQueriesContext(connections[alias]) for alias in aliases]
    for capture in captures:
        capture.__enter__()
    try:
        response = getattr(APIClient(), method)(path, data, format="json" if method == "post" else None)
    finally:
        for capture in captures:
            capture.__exit__(None, None, None)
    return {"status": response.status_code, "body": response.json(), "model": response.get("X-P2W-Model"),
            "sql": {alias: [query["sql"] for query in capture] for alias, capture in zip(aliases, captures)}}


COMMANDS = {"add": add, "hide": hide, "embed": embed, "register": register, "switch": switch, "search": search}

if __name__ == "__main__":
    main()

"""Searches on a real streaming replica, and what a shopper sees while it lags behind the primary.

The test makes a hot standby of the embedded PostgreSQL with its own pg_basebackup
(tests/replica.py) and runs the shop in a process of its own (tests/replica_shop.py) with
the demo's wiring: DATABASE_URL the primary, DATABASE_REPLICA_URL the same database on the
replica, so every search reads the replica and every write goes to the primary. Replay is
held back with pg_wal_replay_pause() while the primary changes, to see the lag:

- a product imported (and embedded) a moment ago is not found until the replica replays it;
- a product taken off sale a moment ago is still listed until the replica replays that;
- a product whose image is embedded on the primary only is refused as a search reference
  with the 400 "not embedded yet", as while it is being indexed, never a 500;
- a model switch reaches searches when the replica replays it: until then each search runs
  on the old model, all of it (X-P2W-Model names it; results identical to before the switch).
"""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from shop_demo import services
from tests.replica import StreamingReplica
from tests.workers import stop_process_group

pytestmark = pytest.mark.worker  # starts a PostgreSQL standby and Django processes

REPO_DIR = Path(__file__).resolve().parent.parent
NOT_EMBEDDED = "Its images are not embedded yet; try again once indexing is done."
RED, GREEN, BLUE, YELLOW, PURPLE, ORANGE = (
    (220, 20, 20), (20, 200, 40), (20, 40, 220), (230, 210, 20), (150, 30, 170), (240, 130, 20))


def primary_url(database="postgres"):
    """DATABASE_URL of ``database`` on the primary (the server bin/test started, or the one DATABASE_URL names)."""
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{database}").geturl()


def primary_lsn():
    """Where the primary's WAL ends now: everything committed so far lies before it."""
    with psycopg.connect(primary_url(), autocommit=True) as conn:
        return str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])


@pytest.fixture(scope="module")
def replica():
    """A streaming replica (the ``shop`` fixture starts it), stopped and deleted at the end whatever happens."""
    replica = StreamingReplica(under=services.var_dir())
    try:
        yield replica
    finally:
        replica.stop()


class Shop:
    """The shop process (tests/replica_shop.py): ``shop.search(...)``, ``shop.add(...)`` and so on."""

    def __init__(self, env, log_path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.replica_shop"], cwd=REPO_DIR, env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)

    def __getattr__(self, op):
        def command(**arguments):
            self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the shop process ended:\n{self.log_path.read_text(errors='replace')[-4000:]}")
            answer = json.loads(line)
            if "error" in answer:
                raise RuntimeError(f"the shop's {op} failed:\n{answer['error']}")
            return answer["ok"]
        return command

    def close(self):
        self.process.stdin.close()  # the end of its commands: it exits
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop_process_group(self.process, grace=10)


@pytest.fixture(scope="module")
def shop(replica, tmp_path_factory):
    """A catalog of three embedded products on a database of its own; searches read it on ``replica``."""
    name = f"p2w_replica_{os.getpid()}"
    folder = tmp_path_factory.mktemp("replica-shop")
    with psycopg.connect(primary_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    shop = migrate = None
    try:
        env = {**os.environ, "DATABASE_URL": primary_url(name), "DJANGO_SETTINGS_MODULE": "tests.settings"}
        # The three slow starts run side by side: the shop process loads its model, the database is
        # migrated on the primary, and the replica is copied from the primary and started.
        shop = Shop({**env, "DJANGO_SETTINGS_MODULE": "tests.replica_settings",
                     "DATABASE_REPLICA_URL": replica.url(name), "P2W_QUERY_ENCODING": "local",
                     "P2W_REPLICA_MEDIA_ROOT": str(folder / "media")}, folder / "shop.log")
        migrate = subprocess.Popen([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_DIR,
                                   env=env, start_new_session=True)
        replica.start(primary_url=primary_url())
        with replica.connect() as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0], "the copy is not a standby"
        assert migrate.wait(timeout=120) == 0, "manage.py migrate failed (its output is above)"
        replica.wait_for(primary_lsn())
        shop.catalog = shop.add(colours=[RED, GREEN, BLUE])
        shop.register(alias="default")
        shop.embed()
        replica.wait_for(primary_lsn())
        yield shop
    finally:
        if migrate is not None:
            stop_process_group(migrate, grace=10)
        if shop is not None:
            shop.close()
        with psycopg.connect(primary_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def replay_paused(replica):
    """Hold the replica's replay back; inside, ``caught_up()`` waits until the primary's WAL has *arrived*."""
    replica.pause_replay()
    try:
        yield lambda: replica.wait_for(primary_lsn(), applied=False)
    finally:
        replica.resume_replay()


def product_ids(answer):
    assert answer["status"] == 200, answer["body"]
    return [row["product"]["id"] for row in answer["body"]["results"]]


def assert_read_the_replica(answer):
    """Every read of the search went to the replica; the primary saw only the in-process query encoder's."""
    assert len(answer["sql"]["replica"]) >= (3 if answer["status"] == 200 else 1), answer["sql"]
    # QUERY_ENCODING "local": the encoder loads the model by id and a reference's stored features from the
    # primary, as a query worker does; the catalog, the filters, the ranking and the page come from the replica.
    for sql in answer["sql"]["default"]:
        assert "p2w_search_embeddingmodel" in sql or "p2w_search_imageembedding" in sql, sql
        assert "catalog_product" not in sql and "p2w_search_productimage" not in sql, sql


def test_a_product_imported_a_moment_ago_is_found_once_the_replica_replays_it(shop, replica):
    with replay_paused(replica) as arrived:
        (new,) = shop.add(colours=[YELLOW])
        assert shop.embed() == 1
        arrived()
        assert replica.replay_state() == "paused"

        lagging = shop.search(method="get", path="/api/search/text/", data={"q": "yellow"})
        assert new["product"] not in product_ids(lagging)
        assert set(product_ids(lagging)) >= {p["product"] for p in shop.catalog}
        assert_read_the_replica(lagging)
        unknown = shop.search(method="get", path="/api/search/similar/", data={"product": new["product"]})
        assert unknown["status"] == 400
        assert unknown["body"] == {"product": [f"There is no product with id {new['product']}."]}
        assert_read_the_replica(unknown)
    replica.wait_for(primary_lsn())

    caught_up = shop.search(method="get", path="/api/search/text/", data={"q": "yellow"})
    assert sorted(product_ids(caught_up)) == sorted([*product_ids(lagging), new["product"]])
    similar = shop.search(method="get", path="/api/search/similar/", data={"product": new["product"]})
    assert sorted(product_ids(similar)) == sorted(product_ids(lagging))
    assert similar["sql"]["default"] == []  # "more like this" encodes nothing: not one query on the primary


def test_a_reference_embedded_on_the_primary_only_is_refused_as_not_embedded_yet(shop, replica):
    (new,) = shop.add(colours=[PURPLE])  # pending, as after an import
    replica.wait_for(primary_lsn())
    with replay_paused(replica) as arrived:
        assert shop.embed() == 1
        arrived()
        refusals = {
            "composed": shop.search(method="post", path="/api/search/composed/",
                                    data={"product": new["product"], "text": "in red"}),
            "similar": shop.search(method="get", path="/api/search/similar/", data={"product": new["product"]}),
            "image": shop.search(method="post", path="/api/search/image/", data={"image_id": new["image"]}),
        }
        for kind, answer in refusals.items():
            assert answer["status"] == 400, (kind, answer["body"])
            assert_read_the_replica(answer)
        assert refusals["composed"]["body"] == {"product": [NOT_EMBEDDED]}
        assert refusals["similar"]["body"] == {"product": [NOT_EMBEDDED]}
        assert refusals["image"]["body"] == {"image_id": [NOT_EMBEDDED]}
    replica.wait_for(primary_lsn())

    composed = shop.search(method="post", path="/api/search/composed/",
                           data={"product": new["product"], "text": "in red"})
    assert new["product"] not in product_ids(composed)
    assert len(product_ids(composed)) >= len(shop.catalog)
    assert_read_the_replica(composed)


def test_a_product_taken_off_sale_is_listed_until_the_replica_replays_it(shop, replica):
    (gone,) = shop.add(colours=[ORANGE])
    assert shop.embed() == 1
    replica.wait_for(primary_lsn())
    with replay_paused(replica) as arrived:
        assert shop.hide(product=gone["product"]) == 1
        arrived()
        lagging = shop.search(method="get", path="/api/search/text/", data={"q": "orange"})
        assert gone["product"] in product_ids(lagging)
        assert_read_the_replica(lagging)
    replica.wait_for(primary_lsn())

    caught_up = shop.search(method="get", path="/api/search/text/", data={"q": "orange"})
    assert sorted(product_ids(caught_up)) == sorted(set(product_ids(lagging)) - {gone["product"]})


def test_a_model_switch_reaches_searches_when_the_replica_replays_it(shop, replica):
    # Last in the module: the model it switches to has no Pic2Word mapping (no composed searches after it).
    searches = {"text": ("get", "/api/search/text/", {"q": "a red shirt"}),
                "similar": ("get", "/api/search/similar/", {"product": shop.catalog[0]["product"]})}

    def run_all():
        return {kind: shop.search(method=method, path=path, data=data)
                for kind, (method, path, data) in searches.items()}

    before = run_all()
    old = before["text"]["model"]
    with replay_paused(replica) as arrived:
        new = shop.register(alias="next")
        assert shop.embed() > 0
        assert shop.switch(alias="next")["key"] == new["key"] != old
        arrived()
        lagging = run_all()
    for kind, answer in lagging.items():
        # The old model, all of it: the same ranking and scores as before the switch, never another model's vectors.
        assert answer["model"] == old, kind
        assert answer["body"] == before[kind]["body"], kind
        assert_read_the_replica(answer)
    replica.wait_for(primary_lsn())

    switched = run_all()
    for kind, answer in switched.items():
        assert answer["model"] == new["key"], kind
        assert sorted(product_ids(answer)) == sorted(product_ids(before[kind])), kind
        scores = [row["score"] for row in answer["body"]["results"]]
        assert scores != [row["score"] for row in before[kind]["body"]["results"]], kind

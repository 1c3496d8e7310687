"""Serving searches, one round: a browser's preflight once the budget is spent, the 503 of a model deleted
mid-search, and the HNSW index of a deleted model.

An OPTIONS request (the CORS preflight a browser sends before a JSON search) was refused with 429 once the
shopper's budget was spent, which the browser reports as a failed search the shopper never sees the reason of.
A search whose model was deleted meanwhile said "busy", as one no worker answered: a client could not tell "try
again in a moment" from "search again now". And a deleted model's partial HNSW index stayed in PostgreSQL, empty,
one per model ever deleted.
"""

import io
import logging

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from p2w_search import dispatch, encoding, index, locks, search, sweeping
from p2w_search.models import EmbeddingModel
from tests import test_hostile_search as hostile_search
from tests import test_search_model_switch as model_switch
from tests.test_admin_writers import MODELS, embedding_model
from tests.test_hostile_search_5 import COMPOSED, IMAGE, SIMILAR, TEXT
from tests.test_search_model_switch import after, before, switch_and_delete

pytestmark = pytest.mark.django_db

# Fixtures: an APIClient that raises a view's exception instead of a 500, the solid colour shop; that shop under
# the serving model and a complete one ready to switch to ("next").
client, shop = hostile_search.client, hostile_search.shop
models = model_switch.models

MODEL_GONE = "The search model was changed while this search ran. Search again."
TOO_MANY = "Request was throttled. Expected available in 60 seconds."


# --- OPTIONS once the anonymous budget is spent ---------------------------------------------------------------


@pytest.mark.parametrize("path", [TEXT, IMAGE, COMPOSED, SIMILAR])
def test_options_is_answered_when_the_budget_is_spent_and_the_search_is_still_refused(client, shop, settings,
                                                                                      path):
    """DRF's throttle refused the preflight itself with 429 once the budget was spent."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": "2/min"}
    assert [client.get(TEXT, {"q": "red"}).status_code for _ in range(3)] == [200, 200, 429]
    preflight = client.options(path)
    assert (preflight.status_code, preflight.get("Retry-After")) == (200, None)
    refused = client.get(TEXT, {"q": "red"})
    assert (refused.status_code, refused.json(), refused["Retry-After"]) == (429, {"detail": TOO_MANY}, "60")


# --- the 503 of a model deleted mid-search --------------------------------------------------------------------


def unavailable(run):
    """``(status, code, reason)`` of the search.Unavailable that ``run()`` raises."""
    with pytest.raises(search.Unavailable) as refused:
        run()
    return refused.value.status, refused.value.code, refused.value.reason


def first(catalog):
    """The first product of ``catalog`` and its image."""
    return catalog[0], catalog[0].p2w_images.get()


# Each way a search meets its model deleted: (where the model goes, the search).
DELETED_MID_SEARCH = {
    "text, before its local encoding": ((search, "serving_model"), lambda catalog: search.text("red shirt")),
    "text, before its ranking": ((encoding, "encode_query"), lambda catalog: search.text("red shirt")),
    "similar, before its stored vector": ((search, "serving_model"), lambda catalog: search.similar(first(catalog)[0])),
    "catalog image, before its ranking": ((index, "stored_query_vector"),
                                          lambda catalog: search.image(image_id=first(catalog)[1].pk)),
    "composed, before its reference": ((search, "serving_model"),
                                       lambda catalog: search.composed(text="in red", product=first(catalog)[0])),
}


@pytest.mark.parametrize("case", DELETED_MID_SEARCH)
def test_a_model_deleted_mid_search_is_a_503_coded_model_changed(models, monkeypatch, case):
    shop, old, new = models
    step, run = DELETED_MID_SEARCH[case]
    after(monkeypatch, *step, switch_and_delete(old, new))
    assert unavailable(lambda: run(shop)) == (503, "model_changed", MODEL_GONE)


def test_a_model_deleted_while_a_composed_query_reads_its_reference_is_model_changed(models, monkeypatch):
    shop, old, new = models
    before(monkeypatch, encoding, "reference_features", switch_and_delete(old, new))
    assert unavailable(lambda: search.composed(text="in red", product=shop[0])) == (503, "model_changed", MODEL_GONE)


def on_worker(monkeypatch, settings, answer):
    """Queries encoded "on a worker": ``answer(name, args)`` stands for the query task's round trip (run in this
    thread: one query a batch, with no batcher thread holding a connection of its own)."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "worker", "QUERY_TIMEOUT": 2.0,
                           "QUERY_BATCH_SIZE": 1}
    monkeypatch.setattr(dispatch, "ask", lambda name, *, args=(), queue, timeout: answer(name, args))


def test_a_model_the_worker_found_deleted_is_model_changed(models, monkeypatch, settings):
    """The worker answers ``{"unavailable": ...}`` for a model deleted before it encoded the query."""
    shop, old, new = models

    def worker(name, args):
        switch_and_delete(old, new)()
        return encoding.encode_on_worker(*args)

    on_worker(monkeypatch, settings, worker)
    assert unavailable(lambda: search.text("red shirt")) == (503, "model_changed", MODEL_GONE)


def test_no_worker_answering_is_still_busy_and_no_model_still_not_ready(models, monkeypatch, settings):
    def no_answer(name, args):
        raise dispatch.NoAnswer()

    on_worker(monkeypatch, settings, no_answer)
    assert unavailable(lambda: search.text("red shirt")) == (503, "busy", (
        "No search worker answered within 2 s; the query queue "
        f"'{settings.P2W_SEARCH['QUERY_QUEUE']}' has no running worker or is overloaded. Try again shortly."))
    EmbeddingModel.objects.all().delete()
    assert unavailable(lambda: search.text("red shirt")) == (
        503, "not_ready", "The search index is not ready: no embedding model is serving yet.")


# --- a deleted model's HNSW index ---------------------------------------------------------------------------------


def index_of(name):
    """``name`` if PostgreSQL has that index, else None."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)::text", [name])
        return cursor.fetchone()[0]


def indexed_models(*names):
    """Models (the first serving, the others retired), each with its HNSW index built; and the indexes' names.

    Indexes an earlier test left (its models' rows emptied, not its indexes) are dropped first."""
    index.drop_deleted_hnsw_indexes()
    made = [embedding_model(name, "retired" if i else "serving") for i, name in enumerate(names)]
    for model in made:
        index.ensure_hnsw_index(model)
    indexes = [index.hnsw_index_name(model) for model in made]
    assert [index_of(name) for name in indexes] == indexes
    return made, indexes


ADMIN_DELETES = {
    "its page": lambda staff, model: staff.post(f"{MODELS}{model.pk}/delete/", {"post": "yes"}),
    "the list's action": lambda staff, model: staff.post(
        MODELS, {"action": "delete_selected", "_selected_action": [model.pk], "post": "yes"}),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ADMIN_DELETES)
def test_a_model_deleted_in_the_admin_takes_its_index_with_it_once_the_delete_commits(admin_client, how):
    (serving, old), (kept, dropped) = indexed_models("serving", "old")
    with CaptureQueriesContext(connection) as queries:
        answer = ADMIN_DELETES[how](admin_client, old)
    assert (answer.status_code, answer["Location"]) == (302, MODELS)
    assert list(EmbeddingModel.objects.values_list("alias", flat=True)) == ["serving"]
    assert (index_of(kept), index_of(dropped)) == (kept, None)
    # After the commit, outside a transaction: CONCURRENTLY, searches of the serving model go on meanwhile.
    assert f"DROP INDEX CONCURRENTLY IF EXISTS {dropped}" in [query["sql"] for query in queries]


@pytest.mark.django_db(transaction=True)
def test_an_index_left_by_an_earlier_delete_goes_with_the_next_one():
    """A model deleted before this release (or whose drop could not run then) left its index: the next delete
    drops it too."""
    (serving, old, earlier), (kept, dropped, left) = indexed_models("serving", "old", "earlier")
    with connection.cursor() as cursor:  # what a delete before this release left: the row gone, not its index
        cursor.execute(f"DELETE FROM {EmbeddingModel._meta.db_table} WHERE id = %s", [earlier.pk])
    assert index_of(left) == left
    old.delete()
    assert [index_of(name) for name in (kept, dropped, left)] == [kept, None, None]


def test_inside_a_transaction_the_index_goes_when_it_commits_and_stays_when_it_rolls_back(
        django_capture_on_commit_callbacks):
    (serving, old), (kept, dropped) = indexed_models("serving", "old")
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        EmbeddingModel.objects.filter(pk=old.pk).delete()
        1 / 0
    assert (index_of(kept), index_of(dropped)) == (kept, dropped)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        EmbeddingModel.objects.filter(pk=old.pk).delete()
        assert index_of(dropped) == dropped  # not before the rows are gone for good
    assert len(callbacks) == 1
    assert (index_of(kept), index_of(dropped)) == (kept, None)


def index_messages(caplog):
    return [record.getMessage() for record in caplog.records if record.name == "p2w_search.index"]


@pytest.mark.django_db(transaction=True)
def test_a_delete_while_another_process_builds_an_index_does_not_wait_for_it(test_database_url, caplog):
    """An index build holds the build lock for as long as it runs (minutes on a large catalog): the admin's delete
    does not hang on it; the index is left, and dropped by the next delete."""
    import psycopg

    (serving, old), (kept, dropped) = indexed_models("serving", "old")
    with psycopg.connect(test_database_url, autocommit=True) as other:  # another process building an index
        other.execute("SELECT pg_advisory_lock(%s)", [index.INDEX_BUILD_LOCK])
        with caplog.at_level(logging.WARNING, logger="p2w_search.index"):
            old.delete()
        assert index_of(dropped) == dropped
        other.execute("SELECT pg_advisory_unlock(%s)", [index.INDEX_BUILD_LOCK])
    assert index_messages(caplog) == [f"the HNSW indexes of deleted models {dropped} were left (another process "
                                      "is building an index): the next sweep drops them"]
    assert index.drop_deleted_hnsw_indexes() == [dropped]
    assert (index_of(kept), index_of(dropped)) == (kept, None)


@pytest.mark.django_db(transaction=True)
def test_a_delete_while_a_long_transaction_uses_the_table_waits_a_bounded_time(test_database_url, caplog,
                                                                              monkeypatch):
    """DROP INDEX CONCURRENTLY waits for every transaction that uses the table: an import's lasts minutes. The wait
    is bounded (``LOCK_WAIT_MS``), once: the indexes after the first would wait for the same transaction. They are
    left, and dropped by the next delete."""
    import psycopg

    monkeypatch.setattr(locks, "LOCK_WAIT_MS", 300)
    (serving, old, earlier), (kept, *dropped) = indexed_models("serving", "old", "earlier")
    EmbeddingModel.objects.filter(pk=earlier.pk).delete()
    assert index_of(dropped[1]) is None
    index.ensure_hnsw_index(earlier)  # as if an earlier delete had left it
    with psycopg.connect(test_database_url) as other:  # an import's transaction, holding the table
        other.execute(f"SELECT count(*) FROM {index.ImageEmbedding._meta.db_table}")
        with caplog.at_level(logging.WARNING, logger="p2w_search.index"):
            old.delete()
        other.rollback()
    assert index_messages(caplog) == [f"the HNSW indexes of deleted models {', '.join(sorted(dropped))} were left "
                                      "(canceling statement due to lock timeout): the next sweep drops them"]
    assert [index_of(name) for name in (kept, *dropped)] == [kept, *dropped]
    assert index.drop_deleted_hnsw_indexes() == sorted(dropped)
    assert [index_of(name) for name in (kept, *dropped)] == [kept, None, None]


def test_the_sweep_drops_an_index_its_delete_left():
    """A delete whose drop ran out of time (a long import held the table) left the index: the next sweep, beat's
    every minute or an admin's ``p2w_index sweep``, drops it."""
    (serving, earlier), (kept, left) = indexed_models("serving", "earlier")
    with connection.cursor() as cursor:  # the row gone, its index left
        cursor.execute(f"DELETE FROM {EmbeddingModel._meta.db_table} WHERE id = %s", [earlier.pk])
    out = io.StringIO()
    call_command("p2w_index", "sweep", stdout=out)
    assert [index_of(name) for name in (kept, left)] == [kept, None]
    assert out.getvalue().strip().endswith(f"; dropped the index of a deleted model: {left}")
    assert sweeping.sweep().indexes_dropped == ()  # nothing left the next time

"""The broker's marker holds a generation that PostgreSQL also keeps; the command-line sweep is the periodic one.

A Redis that comes back from an older RDB snapshot still holds the marker, but an older generation
of it (or, restarted, another run id): the sweep sends the waiting work again all the same. Each
test has a Redis of its own (tests/faults.py), as tests/test_broker_loss.py does; the snapshots
are real (SAVE, more writes, SIGKILL, a start that loads the dump) or an older value written back.
"""

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError, connections

from p2w_search import dispatch, index, indexing, tasks
from p2w_search.models import BrokerMarker
from tests import test_broker_loss as broker_loss
from tests.factories import catalog_upload
from tests.test_broker_loss import CATALOG, EMBED, IMPORT, add_images, pending_ids, waiting

pytestmark = pytest.mark.django_db(transaction=True)

# Fixtures: a Redis of the test's own that this process's Celery app uses; the merchant acme's API client.
private_redis, merchant_client = broker_loss.private_redis, broker_loss.merchant_client


@pytest.fixture(autouse=True)
def no_index_left_by_earlier_tests():
    """An earlier test's flush emptied its models' rows, not their HNSW indexes, which a sweep drops and names in
    its line (tests/test_serving_round.py): gone before these tests, whose lines are exact."""
    index.drop_deleted_hnsw_indexes()


def marker(redis):
    """The marker's value in ``redis`` (None when missing) and the generation PostgreSQL keeps (None: no row)."""
    held = redis.client().get(dispatch.marker_key())
    row = BrokerMarker.objects.filter(key=dispatch.marker_key()).first()
    return (None if held is None else held.decode()), (None if row is None else row.generation)


def sweep_command():
    out = StringIO()
    call_command("p2w_index", "sweep", stdout=out)
    return out.getvalue()


def restart_from_snapshot(redis):
    """SIGKILL ``redis`` and start it again: it loads the dump its last SAVE wrote, losing every later write."""
    redis.crash()
    redis.start()


# The command-line sweep (problem 1): the periodic sweep's function, and it says what it did.

def test_the_sweep_command_after_redis_lost_its_messages_sends_the_waiting_work_again_and_says_so(
        private_redis, merchant_client, settings):
    model = indexing.register_model()
    assert tasks.sweep_pending() == 0  # the marker is set
    job = catalog_upload(merchant_client, CATALOG)["id"]
    add_images(3)
    rows = pending_ids()
    private_redis.crash()
    private_redis.start()

    assert sweep_command() == ("the broker had lost its messages (its Redis lost its data or went back to an older "
                               "copy): sent again 1 import job and 3 images, whatever their age\n")
    assert waiting(private_redis, settings) == [
        (IMPORT, [job]), (EMBED, [model.pk, rows[:2]]), (EMBED, [model.pk, rows[2:]])]
    assert sweep_command() == "sent again what waited longer than 300 s: 0 import jobs and 0 images\n"
    assert len(waiting(private_redis, settings)) == 3


def test_the_sweep_command_sends_a_lost_first_model_start_and_says_so(private_redis, settings):
    """No model registered though images exist: the first upload's start_model was lost; the sweep sends it."""
    assert sweep_command() == ("the broker had lost its messages (its Redis lost its data or went back to an older "
                               "copy): sent again 0 import jobs and 0 images, whatever their age\n")
    add_images(1)
    private_redis.client().delete(settings.P2W_SEARCH["BULK_QUEUE"])

    assert sweep_command() == ("sent again what waited longer than 300 s: 0 import jobs and 0 images; "
                               "and the first model's start, which never arrived\n")
    assert waiting(private_redis, settings) == [(dispatch.START_MODEL, [])]


# The marker's generation (problem 2).

def test_each_sweep_writes_the_next_generation_into_redis_and_postgresql(private_redis):
    indexing.register_model()
    assert marker(private_redis) == (None, None)
    assert [tasks.sweep_pending() for _ in range(3)] == [0, 0, 0]
    assert marker(private_redis) == ("3", 3)


def test_a_redis_back_from_an_older_snapshot_that_holds_the_marker_has_the_waiting_work_sent_again(
        private_redis, merchant_client, settings):
    """A real snapshot: SAVE after a sweep, an upload and images sent, another sweep, then a crash and a start that
    loads the dump. The marker is there, one generation old, and the queue is as it was at the SAVE: empty."""
    model = indexing.register_model()
    assert tasks.sweep_pending() == 0
    assert private_redis.client().save()
    job = catalog_upload(merchant_client, CATALOG)["id"]
    add_images(3)
    rows = pending_ids()
    assert tasks.sweep_pending() == 0  # young: left in the queue
    assert marker(private_redis) == ("2", 2) and len(waiting(private_redis, settings)) == 3

    restart_from_snapshot(private_redis)
    assert marker(private_redis) == ("1", 2) and waiting(private_redis, settings) == []

    assert tasks.sweep_pending() == 3
    assert waiting(private_redis, settings) == [
        (IMPORT, [job]), (EMBED, [model.pk, rows[:2]]), (EMBED, [model.pk, rows[2:]])]
    assert marker(private_redis) == ("3", 3)
    assert tasks.sweep_pending() == 0  # caught up: the normal sweep again
    assert len(waiting(private_redis, settings)) == 3


def test_a_redis_restarted_from_a_snapshot_taken_after_the_last_sweep_is_told_by_its_run_id(
        private_redis, settings):
    """The snapshot holds the marker's current generation (no sweep ran between the SAVE and the crash): the
    generation cannot tell, the Redis's run id, new at each start, does."""
    model = indexing.register_model()
    assert tasks.sweep_pending() == 0
    assert private_redis.client().save()
    add_images(3)
    rows = pending_ids()

    restart_from_snapshot(private_redis)
    assert marker(private_redis) == ("1", 1) and waiting(private_redis, settings) == []

    assert tasks.sweep_pending() == 3
    assert waiting(private_redis, settings) == [(EMBED, [model.pk, rows[:2]]), (EMBED, [model.pk, rows[2:]])]
    assert tasks.sweep_pending() == 0


def test_a_marker_set_back_to_an_older_generation_has_the_waiting_work_sent_again(private_redis, settings):
    """The same Redis (same run id) holding an older generation: a copy of older data took its place."""
    model = indexing.register_model()
    add_images(1)
    assert [tasks.sweep_pending() for _ in range(3)] == [1, 0, 0]  # the first sweep of an installation sends once
    private_redis.client().delete(settings.P2W_SEARCH["BULK_QUEUE"])
    private_redis.client().set(dispatch.marker_key(), "2")

    assert tasks.sweep_pending() == 1
    assert waiting(private_redis, settings) == [(EMBED, [model.pk, pending_ids()])]
    assert marker(private_redis) == ("4", 4)


def test_a_marker_of_the_version_before_is_taken_as_it_was_and_sends_nothing(private_redis, settings):
    """An installation that upgrades: its marker holds a time, PostgreSQL no generation yet; nothing was lost."""
    indexing.register_model()
    add_images(1)
    private_redis.client().delete(settings.P2W_SEARCH["BULK_QUEUE"])
    private_redis.client().set(dispatch.marker_key(), "2026-12-01T10:00:00.000000+00:00")

    assert tasks.sweep_pending() == 0
    assert waiting(private_redis, settings) == [] and marker(private_redis) == ("1", 1)


def test_two_sweeps_at_once_take_turns_and_only_the_first_sends_the_work_again(private_redis, settings, monkeypatch):
    """The first sweep is held inside its look at the marker; the second waits on PostgreSQL's row lock until the
    first has recorded its generation, then finds nothing lost; a third finds nothing lost either."""
    indexing.register_model()
    assert tasks.sweep_pending() == 0
    private_redis.client().set(dispatch.marker_key(), "0")  # older than PostgreSQL's 1: lost
    inside, go_on, results = threading.Event(), threading.Event(), {}
    run_id = dispatch._redis_run_id

    def held_run_id(client):
        if threading.current_thread().name == "first":
            inside.set()
            assert go_on.wait(30)
        return run_id(client)

    monkeypatch.setattr(dispatch, "_redis_run_id", held_run_id)

    def look(name):
        try:
            with dispatch.lost_messages() as lost:
                results[name] = lost
        finally:
            connections.close_all()

    first = threading.Thread(target=look, args=("first",), name="first")
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=look, args=("second",), name="second")
    second.start()
    second.join(1.0)
    assert second.is_alive() and results == {}  # waiting for the first's row lock
    go_on.set()
    first.join(30)
    second.join(30)
    assert results == {"first": True, "second": False}
    assert marker(private_redis) == ("3", 3)
    with dispatch.lost_messages() as lost:
        assert lost is False


def test_a_sweep_that_cannot_record_its_generation_takes_the_marker_back(private_redis, settings, monkeypatch):
    """The marker was written but PostgreSQL went away before the generation was recorded: had Redis lost its data,
    the next sweep must still see it, so the marker is deleted."""
    model = indexing.register_model()
    add_images(1)
    assert tasks.sweep_pending() == 1  # the first: the marker was missing
    private_redis.client().delete(settings.P2W_SEARCH["BULK_QUEUE"])
    private_redis.client().set(dispatch.marker_key(), "0")  # went back in time

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patch:
        patch.setattr(dispatch, "_record_generation", database_gone)
        with pytest.raises(OperationalError):
            tasks.sweep_pending()
    assert marker(private_redis) == (None, 1)
    assert tasks.sweep_pending() == 1
    assert waiting(private_redis, settings) == [(EMBED, [model.pk, pending_ids()])]

"""Sending Celery tasks: by name, through one guarded path.

The app's domain modules (indexing, uploads, encoding) never import ``tasks``: they send a
task by its name here, so the layers run one way and Celery stays at the edge.

Background work is sent after the transaction commits. A broker out of reach is logged,
not raised: what the task would do is already committed as pending rows or queued jobs,
and the periodic sweep sends it again (tests/test_faults.py commits an import with Redis
down). A caller that must know whether a send worked (the admin's "start this model"
button, which no sweep repeats) sends ``now`` and gets ``QueueUnavailable`` with a
readable message instead.

``lost_messages`` tells the sweep when the broker itself lost what it held (a Redis
restarted without persistence, or back from an older snapshot), so that the work waiting
is sent again at once rather than after ``SWEEP_AFTER``.
"""

import logging
from contextlib import contextmanager

from celery import current_app
from celery.exceptions import TimeoutError as CeleryTimeout
from django.db import DatabaseError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable
from redis.exceptions import ResponseError

from p2w_search.conf import app_settings
from p2w_search.models import BrokerMarker

__all__ = [
    "EMBED_BATCH", "START_MODEL", "RUN_IMPORT", "ENCODE_QUERY", "SWEEP", "CLEANUP",
    "QueueUnavailable", "NoAnswer", "TaskFailed", "send", "ask", "lost_messages", "marker_key",
]

logger = logging.getLogger(__name__)

EMBED_BATCH = "p2w_search.tasks.embed_batch"
START_MODEL = "p2w_search.tasks.start_model"
RUN_IMPORT = "p2w_search.tasks.run_import"
ENCODE_QUERY = "p2w_search.tasks.encode_query"
SWEEP = "p2w_search.tasks.sweep_pending"
CLEANUP = "p2w_search.tasks.cleanup_storage"


class QueueUnavailable(Exception):
    """The task queue (the broker) cannot be reached; the message says so in plain words."""


class NoAnswer(Exception):
    """A task was sent but no worker answered within the time given."""


class TaskFailed(Exception):
    """The worker raised while it ran the task; ``cause`` is its exception (as the result store rebuilt it).

    Raised in its place: the remote exception came back as its own class, which a web process took for its own
    error (a worker's ``DoesNotExist`` was a 500), or as a class Celery made up that no caller can catch.
    """

    def __init__(self, name, cause, traceback=None):
        super().__init__(f"{name} failed on the worker: {type(cause).__name__}: {cause}")
        self.cause, self.traceback = cause, traceback


def send(name, *, args=(), kwargs=None, queue=None, when="commit"):
    """Send the background task ``name`` to ``queue`` (default: the bulk queue).

    ``when="commit"``: once the current transaction commits (at once outside one); a
    broker out of reach is logged and left to the sweep. ``when="now"``: at once, and
    QueueUnavailable is raised when the broker cannot be reached.
    """
    queue = queue or app_settings.BULK_QUEUE

    def publish():
        # Background tasks keep no result: a stored result made each send subscribe to Redis's
        # result channel (20 s of retries with Redis down, then an error).
        current_app.send_task(name, args=list(args), kwargs=kwargs or {}, queue=queue, ignore_result=True)

    if when == "now":
        try:
            publish()
        except BrokerUnreachable as exc:
            logger.warning("could not send %s: %s", name, exc)
            raise QueueUnavailable(_unreachable(exc)) from None
        return

    def publish_guarded():
        try:
            publish()
        except BrokerUnreachable as exc:  # kombu's, once its own publish retries are spent
            logger.warning("could not send %s (%s); the sweep will send it again", name, exc)

    transaction.on_commit(publish_guarded)


def ask(name, *, args=(), queue, timeout):
    """Send task ``name`` now and return its result, waiting at most ``timeout`` seconds.

    Raises NoAnswer when no worker answers in time (the message expires unanswered, so a
    worker that starts later does not do work nobody waits for), QueueUnavailable when
    the broker cannot be reached, and TaskFailed when the task raised on the worker.
    """
    try:
        result = current_app.send_task(name, args=list(args), queue=queue, expires=timeout)
        answer = result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        raise NoAnswer(f"no worker on queue '{queue}' answered within {timeout:g} s") from None
    except (BrokerUnreachable, *current_app.backend.connection_errors) as exc:
        raise QueueUnavailable(_unreachable(exc)) from None
    except RuntimeError as exc:
        # Celery's result consumer gave up reconnecting to the result store (Redis) after its
        # retry policy (result_backend_transport_options["retry_policy"]; 20 s by default).
        if "result store" not in str(exc):
            raise
        # Not Celery's own words: they add "The Celery application must be restarted.", which is not so (the next
        # search reconnects, tests/test_faults_round_6.py) and a shopper's page showed it.
        raise QueueUnavailable(_unreachable("the result store stopped answering")) from None
    if result.failed():
        raise TaskFailed(name, answer, result.traceback)
    if not result.successful():  # revoked: it expired as a worker took it, at the end of the wait
        raise NoAnswer(f"no worker on queue '{queue}' answered within {timeout:g} s")
    return answer


def _unreachable(exc):
    return f"The task queue cannot be reached ({' '.join(str(exc).split())}). Try again shortly."


def marker_key():
    """The key of ``lost_messages``'s marker: one per bulk queue, as two shops that share a Redis have their own."""
    return f"p2w_search:broker-marker:{app_settings.BULK_QUEUE}"


@contextmanager
def lost_messages():
    """Yield whether the broker may have lost messages sent before; the marker is moved on for the next look.

    The marker is a key without expiry in the broker's Redis holding a generation, one more at each look, that
    PostgreSQL also keeps (``BrokerMarker``, with the run id of the Redis it was written to). The Redis has lost data
    since the last look when the marker is missing (restarted without persistence, flushed, or a new server behind
    the same URL), when it holds an older generation (back from an older snapshot: the marker survived, the messages
    sent after the snapshot did not), or when its run id changed (restarted: even from a snapshot taken after the
    last look, what came after the snapshot is gone). The marker is also missing the first time on a new
    installation, which sends the waiting work once more: harmless, as a worker takes a message twice without doing
    the work twice (an embedding is claimed once, an import runs once, under its merchant's lock), as is the one
    extra sending after a restart that lost nothing (AOF with fsync always). A marker of the version before (a time,
    not a generation) counts as generation 0, so an upgrade sends nothing early.

    Yields False, doing nothing new, for a broker that is not Redis (RabbitMQ keeps its durable
    queues across a restart; kombu's other transports have no such key) and for a broker out of
    reach: nothing is known then, the marker is left as it is, and the next look tells. The
    connection is the Celery app's, as for everything sent.
    """
    with current_app.connection_for_write() as conn:
        if conn.transport.driver_type != "redis":
            yield False
            return
        try:
            lost = _advance_marker(conn)
        except (BrokerUnreachable, *conn.connection_errors) as exc:
            logger.warning("could not look for the broker's marker (%s); the sweep goes on as usual",
                           " ".join(str(exc).split()))
            lost = False
        if not lost:
            yield False
            return
        logger.warning("the broker's marker %s was missing, older than PostgreSQL's or in a Redis restarted since "
                       "(its Redis lost data, or this is the first sweep): sending the waiting work again",
                       marker_key())
        try:
            yield True
        except BaseException:
            # The work was not all sent (the database went away mid-sweep): the next look must send it again.
            _take_marker_back(conn)
            raise


def _advance_marker(conn):
    """Write the next generation into the marker and PostgreSQL; return whether the Redis lost data since the last.

    PostgreSQL's row is locked from the read to the commit: two sweeps at once (two beats) take turns, and the
    second compares with what the first recorded. A sweep that read PostgreSQL's generation and wrote its own
    later, after another sweep, would leave Redis behind PostgreSQL, and the next look would send everything again.
    The marker is read and written in one step (GETSET): a loss between a read and a write would go unseen. It is
    written before the work is sent again: a loss while it is sent takes the new generation with it, and the next
    look sees that.
    """
    key, written = marker_key(), False
    try:
        with conn.default_channel.conn_or_acquire() as client, transaction.atomic():
            BrokerMarker.objects.bulk_create([BrokerMarker(key=key)], ignore_conflicts=True)
            last = BrokerMarker.objects.select_for_update().get(key=key)
            run_id = _redis_run_id(client)
            held = _generation(client.getset(key, str(last.generation + 1)))
            written = True
            _record_generation(key, last.generation + 1, run_id)
    except DatabaseError:
        if written:  # and not recorded: deleted, so that a loss it hid is seen at the next look
            _take_marker_back(conn)
        raise
    restarted = bool(last.redis_run_id and run_id and run_id != last.redis_run_id)
    return held is None or held < last.generation or restarted


def _record_generation(key, generation, run_id):
    BrokerMarker.objects.filter(key=key).update(generation=generation, redis_run_id=run_id, updated_at=timezone.now())


def _redis_run_id(client):
    """The run id of the Redis behind ``client`` (new at each start); "" where INFO is refused (renamed away)."""
    try:
        return str(client.info("server").get("run_id", ""))
    except ResponseError:
        return ""


def _generation(value):
    """The generation a marker holds: None when missing, 0 for the version before's (a time) or anything else."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return 0


def _take_marker_back(conn):
    try:
        with conn.default_channel.conn_or_acquire() as client:
            client.delete(marker_key())
    except (BrokerUnreachable, *conn.connection_errors):
        logger.warning("could not take the broker's marker back; what was not sent waits for SWEEP_AFTER")

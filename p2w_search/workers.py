"""The workers' side: a warm start, a heartbeat the web and the admin can read, and logs an operator can keep.

A worker process loads its models (and, on the query queue, the Pic2Word mapping) and
runs one forward pass of each kind when it starts, before it takes a task: the first
batch or search after a restart costs what any other does. Only then does it report
itself ready, in a ``WorkerProcess`` row that it refreshes every ``HEARTBEAT_SECONDS``;
a row not refreshed for ``ALIVE_SECONDS`` is a worker that died.

Celery's signals call these functions (tasks.py); nothing here imports Celery's app.
"""

import logging
import os
import threading
import time

from django.db import DatabaseError, close_old_connections, connection
from django.db.models.functions import Now
from django.utils import timezone

from p2w_search.conf import app_settings

__all__ = [
    "HEARTBEAT_SECONDS", "ALIVE_SECONDS", "remember_worker", "warm_up", "start_heartbeat", "task_done",
    "forget_process", "alive", "lost", "ResultSummary",
]

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
ALIVE_SECONDS = 30
TASK_BEAT_SECONDS = 2  # a task's end is reported this soon at the latest, not only at the next heartbeat

# What the worker's main process knows at start-up; its pool's processes inherit it when forked.
_worker = {"hostname": None, "queues": []}
_process = {"models": [], "device": "", "last_task_at": None, "tasks": 0, "started_at": None}
_last_beat = [0.0]  # time.monotonic() of this process's last beat
_stopped = [False]  # set when the process stops cleanly: a beat after that would write its row back
UNNAMED = "unknown"  # the hostname of a beat before Celery told the worker's name


def remember_worker(hostname, queues):
    """Record the worker's name and queues (Celery's ``celeryd_after_setup``, in the main process).

    The solo and threads pools warm up in the main process before Celery sends this, so their
    first beat had neither: that row is replaced now, and the process is seen on its queues at
    once, not a heartbeat later beside a nameless row that would look like a process gone.
    """
    from p2w_search.models import WorkerProcess

    _worker.update(hostname=hostname, queues=sorted(queues))
    if _last_beat[0]:
        try:
            WorkerProcess.objects.filter(hostname=UNNAMED, pid=os.getpid()).delete()
        except DatabaseError as exc:
            logger.warning("nameless heartbeat not removed: %s", exc)
        _beat()


def warm_up():
    """Load what this worker's tasks need and run each forward pass once; return the model keys loaded.

    A bulk worker embeds a picture with every active model; a query worker also encodes a
    text and composes a query with the serving model's mapping. A model that cannot be
    loaded is logged, not raised: the worker still starts, and its tasks report the error.
    """
    from PIL import Image

    from p2w_search.composition import prompt_template
    from p2w_search.embedders import DEFAULT_ALIAS, get_embedder
    from p2w_search.indexing import active_models, embedder_for

    _process["started_at"] = timezone.now()
    queues = _worker["queues"]
    query = not queues or app_settings.QUERY_QUEUE in queues
    picture = Image.new("RGB", (64, 64), (128, 128, 128))
    loaded = []
    try:
        models = list(active_models())
        embedders = [(model, embedder_for(model)) for model in models] or [(None, get_embedder(DEFAULT_ALIAS))]
        for model, embedder in embedders:
            features = embedder.embed_images([picture], normalize=False)
            if query and (model is None or model.state == model.State.SERVING):
                embedder.embed_texts(["a photo"])
                if embedder.params.get("MAPPING"):
                    embedder.compose(features, ["in red"], template=prompt_template())
            loaded.append(model.key if model is not None else f"{DEFAULT_ALIAS} (not registered yet)")
            _process["device"] = str(getattr(embedder.load(), "device", ""))
    except Exception:  # noqa: BLE001 - a broken model must not keep the worker from starting
        logger.exception("warm-up failed; the worker starts cold")
    finally:
        close_old_connections()
    _process["models"] = loaded
    return loaded


def task_done():
    """Count a task this process ran (Celery's ``task_postrun``); report it now if no beat did for a while.

    Without the early beat, the admin page would say "no task yet" for up to
    ``HEARTBEAT_SECONDS`` after a worker's first batches; at most one extra write every
    ``TASK_BEAT_SECONDS``, however many tasks a process runs.
    """
    _process["last_task_at"] = timezone.now()
    _process["tasks"] += 1
    if time.monotonic() - _last_beat[0] >= TASK_BEAT_SECONDS:
        _beat()


def start_heartbeat():
    """Report this process ready now, then every ``HEARTBEAT_SECONDS``, from a daemon thread."""
    _beat()
    thread = threading.Thread(target=_beat_forever, name="p2w-heartbeat", daemon=True)
    thread.start()
    return thread


def _beat_forever():
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        _beat()


def _beat():
    from p2w_search.models import WorkerProcess

    if _stopped[0]:  # forgotten on a clean stop; the heartbeat thread may wake once more before the exit
        return
    # The database's clock, which every web process compares with (alive, lost): a worker whose own clock is
    # ahead wrote a "seen" in the future, and counted as alive for that long after it died.
    now = Now()
    _last_beat[0] = time.monotonic()
    try:
        WorkerProcess.objects.update_or_create(
            hostname=_worker["hostname"] or UNNAMED, pid=os.getpid(),
            defaults={"queues": _worker["queues"], "loaded_models": _process["models"], "device": _process["device"],
                      "started_at": _process["started_at"] or now, "seen_at": now,
                      "last_task_at": _process["last_task_at"], "tasks": _process["tasks"]},
            create_defaults={"ready_at": now, "queues": _worker["queues"], "loaded_models": _process["models"],
                             "device": _process["device"], "started_at": _process["started_at"] or now,
                             "seen_at": now, "last_task_at": _process["last_task_at"], "tasks": _process["tasks"]},
        )
    except DatabaseError as exc:  # the database restarting: the next beat tries again
        logger.warning("heartbeat not written: %s", exc)
    finally:
        if threading.current_thread() is not threading.main_thread():
            connection.close()


def forget_process():
    """Remove this process's row when it stops cleanly (Celery's ``worker_process_shutdown`` in a prefork pool's
    processes, ``worker_shutdown`` in the main process, where the solo and threads pools run), and beat no more."""
    from p2w_search.models import WorkerProcess

    _stopped[0] = True
    try:
        WorkerProcess.objects.filter(hostname=_worker["hostname"] or UNNAMED, pid=os.getpid()).delete()
    except DatabaseError:
        pass


def alive(queue=None):
    """The worker processes that reported within ``ALIVE_SECONDS`` (a QuerySet), on ``queue`` if given."""
    from datetime import timedelta

    from p2w_search.models import WorkerProcess

    processes = WorkerProcess.objects.filter(seen_at__gte=Now() - timedelta(seconds=ALIVE_SECONDS))
    if queue is not None:
        processes = processes.filter(queues__contains=[queue])
    return processes


def lost(*, within=3600):
    """The processes that stopped reporting in the last ``within`` seconds without a clean stop (a QuerySet).

    A process that stops cleanly deletes its row (``forget_process``); one killed (the OOM
    killer, SIGKILL) or hung keeps it, and a restarted worker comes back under a new pid.
    """
    from datetime import timedelta

    from p2w_search.models import WorkerProcess

    return WorkerProcess.objects.filter(seen_at__lt=Now() - timedelta(seconds=ALIVE_SECONDS),
                                        seen_at__gte=Now() - timedelta(seconds=within)).order_by("-seen_at")


class ResultSummary(logging.Filter):
    """Write a task's result in a worker's log as its size, never in full.

    A query worker logged every result vector (1.2 KB a line, 78 % of its log); an image
    query's payload would be worse. Ids and times stay.
    """

    KEEP = 40  # characters of a result short enough to show as it is (an embedded count)

    def filter(self, record):
        args = record.args
        if isinstance(args, dict) and isinstance(args.get("return_value"), str):
            value = args["return_value"]
            if len(value) > self.KEEP:
                record.args = {**args, "return_value": f"<result of {len(value)} characters>"}
        return True

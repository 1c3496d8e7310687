"""The Procfile that bin/demo runs: every task the shop sends has a worker that consumes its queue."""

import re
from pathlib import Path

from django.conf import settings

from p2w_search.conf import DEFAULTS

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile():
    return dict(line.split(":", 1) for line in PROCFILE.read_text().splitlines() if line.strip())


def consumed_queues():
    queues = set()
    for command in procfile().values():
        match = re.search(r"celery -A shop_demo worker --queues (\S+)", command)
        if match:
            queues.update(match.group(1).split(","))
    return queues


def test_demo_runs_web_bulk_and_query_workers_and_beat():
    processes = procfile()
    assert set(processes) == {"web", "bulk", "query", "beat"}
    assert "gunicorn shop_demo.wsgi:application" in processes["web"]
    assert "celery -A shop_demo beat" in processes["beat"]


def test_bulk_and_query_work_have_their_own_workers():
    processes = procfile()
    assert f"--queues {DEFAULTS['BULK_QUEUE']} " in processes["bulk"]
    assert f"--queues {DEFAULTS['QUERY_QUEUE']} " in processes["query"]


def test_workers_consume_exactly_the_apps_two_queues():
    assert consumed_queues() == {DEFAULTS["BULK_QUEUE"], DEFAULTS["QUERY_QUEUE"]}


def test_every_periodic_task_goes_to_a_consumed_queue():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "p2w_search.tasks.sweep_pending" in tasks  # the sweep that re-queues lost work is scheduled
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        queue = entry.get("options", {}).get("queue", "celery")
        assert queue in consumed_queues(), f"beat entry {name!r} goes to {queue!r}, which no worker consumes"

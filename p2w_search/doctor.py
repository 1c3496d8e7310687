"""What is wrong with the index right now, as system-check messages with ids (``p2w_search.H001`` ...).

One list for every place that warns: the admin's index page, ``p2w_index status`` and
``p2w_index doctor`` (which exits non-zero on an error). The findings read the status that
``status.index_status`` gathered, so a page costs its queries once.

| id | level | finding |
| --- | --- | --- |
| H001 | error | the bulk queue has images to embed and no live worker |
| H002 | error | searches are encoded on workers and no worker is alive on the query queue |
| H003 | error | the broker cannot be reached |
| H004 | warning | no model serves searches |
| H005 | warning | a model has images waiting and none was embedded in the last minutes, with workers alive |
| H006 | warning | worker processes stopped reporting without a clean stop (killed, out of memory, hung) |
| H007 | warning | searches answered 503 in the last 5 minutes |
| H008 | warning | searches failed with another server error in the last 5 minutes |
| H009 | info | searches were throttled (429) in the last 5 minutes |
| H010 | warning | images failed to embed under the serving model |
| H011 | warning | files of deleted or replaced images are still in storage after their delete was due |
"""

from django.core import checks
from django.utils import timezone

from p2w_search.conf import app_settings
from p2w_search.rates import RATE_WINDOW, duration_text

__all__ = ["findings", "ACTIVE_STATES"]

ACTIVE_STATES = ("building", "serving")  # models the workers embed for
RECENT = 5  # minutes of search health the findings look at


def findings(status):
    """The check messages (errors first) for ``status``, a dict of ``status.index_status``."""
    found = []
    bulk, query = app_settings.BULK_QUEUE, app_settings.QUERY_QUEUE
    hosts = {row["queue"]: row["hosts"] for row in status["workers"]}
    depths = status["queues"]
    work = sum(row["counts"]["pending"] + row["counts"]["missing"] for row in status["models"]
               if row["model"].state in ACTIVE_STATES)
    waiting = depths.get(bulk) or 0
    if (work or waiting) and not hosts.get(bulk):
        found.append(checks.Error(
            f"queue {bulk} has {work} images to embed"
            + (f" ({waiting} task{'s' if waiting != 1 else ''} waiting)" if waiting else "")
            + " and no worker: they stay pending until one runs.",
            hint=f"Start a worker on it: celery -A <your project> worker --queues {bulk} (bin/demo's 'bulk' process).",
            id="p2w_search.H001"))
    if status["query_encoding"] == "worker" and not hosts.get(query):
        found.append(checks.Error(
            f"no worker is alive on queue {query}: text, photo and composed searches answer 503 after "
            f"{float(app_settings.QUERY_TIMEOUT):g} s.",
            hint=f"Start a worker on it: celery -A <your project> worker --queues {query}, or encode queries in the "
                 "web process (P2W_SEARCH['QUERY_ENCODING'] = 'local').",
            id="p2w_search.H002"))
    if any(depth is None for depth in depths.values()):
        found.append(checks.Error(
            "the broker cannot be reached: no task is sent, and the queue depths are unknown.",
            hint="Check REDIS_URL (the Celery broker) and that Redis is running.", id="p2w_search.H003"))
    if status["serving"] is None:
        found.append(checks.Warning(
            "no model serves searches yet: every search answers 503.",
            hint="manage.py p2w_index embed, then wait for the catalog to be embedded.", id="p2w_search.H004"))
    found += _stalled(status, hosts.get(bulk))
    found += _lost(status["lost_workers"])
    found += _searches(status["search"]["windows"].get(RECENT, {}).get("all"))
    serving = next((row for row in status["models"] if row["model"].state == "serving"), None)
    if serving is not None and serving["counts"]["failed"]:
        found.append(checks.Warning(
            f"{serving['counts']['failed']} images failed to embed under the serving model {serving['model']}: "
            "shoppers cannot find them.",
            hint="See the last errors on the admin's index page; fix the files and retry them (image admin action).",
            id="p2w_search.H010"))
    found += _files_left(status["file_deletions"])
    return sorted(found, key=lambda message: -message.level)


def _files_left(left):
    if not left["count"]:
        return []
    waited = duration_text((timezone.now() - left["oldest"]).total_seconds())
    error = f" Last error: {left['last_error']}" if left["last_error"] else ""
    return [checks.Warning(
        f"{left['count']} file{'s' if left['count'] != 1 else ''} of deleted or replaced images "
        f"{'are' if left['count'] != 1 else 'is'} still in storage, the oldest due {waited} ago, and still "
        f"served.{error}",
        hint="The cleanup task (p2w_search.tasks.cleanup_storage, on beat hourly) deletes them once the storage "
             "accepts: check its credentials and that it can be reached.",
        id="p2w_search.H011")]


def _stalled(status, bulk_hosts):
    found = []
    if not bulk_hosts:
        return found  # H001 says why
    for row in status["models"]:
        oldest = row.get("oldest_pending")
        if row["model"].state not in ACTIVE_STATES or row["rate"] != 0 or oldest is None:
            continue
        waited = (timezone.now() - oldest).total_seconds()
        if waited > RATE_WINDOW:
            processes = sum(host["processes"] for host in bulk_hosts)
            found.append(checks.Warning(
                f"model {row['model']} has {row['counts']['pending']} images pending, the oldest queued "
                f"{duration_text(waited)} ago, and none was embedded in the last {RATE_WINDOW // 60} minutes although "
                f"{processes} worker process{'es' if processes != 1 else ''} "
                f"{'are' if processes != 1 else 'is'} alive on {app_settings.BULK_QUEUE}.",
                hint="Look at the bulk worker's log: a model that does not load, or a worker out of memory, "
                     "leaves the images pending.",
                id="p2w_search.H005"))
    return found


def _lost(processes):
    if not processes:
        return []
    now = timezone.now()
    named = ", ".join(f"{p.hostname} pid {p.pid} ({'/'.join(p.queues) or 'no queue'}, last seen "
                      f"{duration_text((now - p.seen_at).total_seconds())} ago)" for p in processes[:3])
    more = f" and {len(processes) - 3} more" if len(processes) > 3 else ""
    return [checks.Warning(
        f"{len(processes)} worker process{'es' if len(processes) != 1 else ''} stopped reporting in the last hour "
        f"without a clean stop: {named}{more}.",
        hint="Killed (out of memory?), crashed or hung; its batch goes back to the queue. A supervisor restarts it.",
        id="p2w_search.H006")]


def _searches(recent):
    found = []
    if not recent or not recent["requests"]:
        return found
    total = recent["requests"]
    if recent["unavailable"]:
        found.append(checks.Warning(
            f"{recent['unavailable']} of {total} searches in the last {RECENT} minutes answered 503 (unavailable).",
            hint="No query worker answered in time (see H002), the broker was out of reach, or no model serves.",
            id="p2w_search.H007"))
    if recent["failed"]:
        found.append(checks.Warning(
            f"{recent['failed']} of {total} searches in the last {RECENT} minutes failed with a server error.",
            hint="See the web server's log.", id="p2w_search.H008"))
    if recent["throttled"]:
        found.append(checks.Info(
            f"{recent['throttled']} of {total} searches in the last {RECENT} minutes were throttled (429).",
            hint="Anonymous searches are limited per address (P2W_SEARCH['ANON_SEARCH_RATE']); behind a proxy, "
                 "set NUM_PROXIES or every shopper shares one budget.",
            id="p2w_search.H009"))
    return found

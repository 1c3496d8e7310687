"""What the index holds and does, for the admin's index page, ``p2w_index status`` and ``doctor``.

Counts by model and state, sizes, queue depths, the last errors; the workers alive on each
queue (their heartbeats, workers.py); each model's embedding rate and time left (rates.py);
search latency and answer counts (search_health.py); and what is wrong (doctor.py).
"""

import json

from django.db import connection
from django.db.models import Count, Min

from p2w_search import doctor, index, product_images, rates, search_health, serving, workers
from p2w_search.conf import app_settings
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from p2w_search.svg_charts import line_chart

__all__ = ["index_status", "queue_depths", "workers_by_queue", "read_processes", "charts", "flower_url",
           "file_deletions_left"]


def queue_depths():
    """Messages waiting in the bulk and query queues, or None where the broker cannot tell."""
    from celery import current_app

    depths = {}
    try:
        with current_app.connection_for_read() as conn:
            channel = conn.default_channel
            for queue in (app_settings.BULK_QUEUE, app_settings.QUERY_QUEUE):
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # a queue nobody declared yet holds nothing
                    depths[queue] = 0
    except Exception:
        depths = {app_settings.BULK_QUEUE: None, app_settings.QUERY_QUEUE: None}
    return depths


def _relation_size(name):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(to_regclass(%s))", [name])
        return cursor.fetchone()[0]


def flower_url():
    """The URL of the deployment's Flower (Celery's monitor), or None when it runs none."""
    return app_settings.FLOWER_URL or None


def workers_by_queue():
    """``[{"queue", "hosts"}]`` for the bulk and query queues: the live worker processes grouped by host.

    A host's entry: ``hostname``, ``processes`` (its concurrency: one heartbeat per pool
    process), ``devices``, ``models`` (loaded before the first task), ``ready_at`` (the
    earliest), ``last_task_at`` (the latest, or None), ``tasks`` (run by the live processes).
    """
    alive = read_processes(workers.alive())
    result = []
    for queue in (app_settings.BULK_QUEUE, app_settings.QUERY_QUEUE):
        hosts = {}
        for process in alive:
            if queue in process.queues:
                hosts.setdefault(process.hostname, []).append(process)
        result.append({"queue": queue, "hosts": [_host(name, processes) for name, processes in sorted(hosts.items())]})
    return result


def read_processes(processes):
    """``processes`` (WorkerProcess rows) as a list, each one's ``queues`` and ``loaded_models`` a list of texts.

    A heartbeat writes both as JSON lists of names; a row another version wrote, or one
    edited by hand, may hold null, an object, numbers or lists there, which the page and
    ``p2w_index status`` sorted and joined into a 500. Such a row reads as the names it
    holds: a list's items (a name as it is, anything else as its JSON), nothing otherwise,
    as the queue filter of ``workers.alive`` reads it.
    """
    found = list(processes)
    for process in found:
        process.queues, process.loaded_models = _names(process.queues), _names(process.loaded_models)
    return found


def _names(value):
    if not isinstance(value, list):
        return []
    return [item if isinstance(item, str) else json.dumps(item) for item in value]


def _host(hostname, processes):
    last = [p.last_task_at for p in processes if p.last_task_at is not None]
    return {
        "hostname": hostname, "processes": len(processes),
        "devices": sorted({p.device for p in processes if p.device}) or ["?"],
        "models": sorted({model for p in processes for model in p.loaded_models}),
        "ready_at": min(p.ready_at for p in processes), "last_task_at": max(last) if last else None,
        "tasks": sum(p.tasks for p in processes), "pids": sorted(p.pid for p in processes),
    }


def index_status(*, errors=10):
    """Everything the index page shows; ``findings`` are doctor's check messages for it."""
    models = []
    for model in EmbeddingModel.objects.order_by("-pk"):
        counts = serving.model_progress(model)
        done = counts["ready"] + counts["failed"]
        retired = model.state == EmbeddingModel.State.RETIRED
        rate = None if retired else rates.embedding_rate(model)
        models.append({
            "model": model, "counts": counts,
            "progress": done / counts["total"] if counts["total"] else 1.0,
            "complete": not counts["pending"] and not counts["missing"],
            "finds_nothing": bool(counts["total"]) and not counts["ready"],  # every image failed: not switched to
            "index_bytes": _relation_size(index.hnsw_index_name(model)),
            "rate": rate, "seconds_left": None if retired else rates.seconds_left(counts, rate),
            "oldest_pending": ImageEmbedding.objects.filter(model=model, state=ImageEmbedding.State.PENDING)
            .aggregate(oldest=Min("queued_at"))["oldest"],
        })
    result = {
        # Each model's progress counted them (the same count), unless there is no model yet.
        "images": models[0]["counts"]["total"] if models else ProductImage.objects.filter(in_index=True).count(),
        "serving": EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).first(),
        "models": models,
        "table_bytes": _relation_size(ImageEmbedding._meta.db_table),
        "queues": queue_depths(),
        "errors": list(ImageEmbedding.objects.filter(state=ImageEmbedding.State.FAILED)
                       .select_related("image", "model").order_by("-updated_at")[:errors]),
        "aliases": sorted(app_settings.EMBEDDERS),
        "workers": workers_by_queue(),
        "lost_workers": read_processes(workers.lost()),
        "query_encoding": app_settings.QUERY_ENCODING,
        "search": search_health.summary(),
        "flower_url": flower_url(),
        "file_deletions": file_deletions_left(),
    }
    result["findings"] = doctor.findings(result)
    return result


def file_deletions_left():
    """Image files whose delete was due ``RETRY_AFTER`` ago or more: ``count``, ``oldest``, ``last_error``."""
    left = product_images.overdue_deletions()
    summary = left.aggregate(count=Count("id"), oldest=Min("created_at"))
    last = left.exclude(last_error="").order_by("-id").values_list("last_error", flat=True).first()
    return {**summary, "last_error": last or ""}


def charts(status):
    """Inline SVG charts of the last hour: images embedded per second by model, and search p95."""
    minutes = search_health.KEEP_MINUTES
    per_minute = rates.per_minute(minutes=minutes)
    shown = [row["model"] for row in reversed(status["models"])
             if row["model"].state != EmbeddingModel.State.RETIRED or row["model"].pk in per_minute]
    embedded = [(f"{model.pk}: {model.architecture}", [n / 60 for n in per_minute.get(model.pk, [0] * minutes)])
                for model in shown]
    latency = [("", [point["p95"] for point in status["search"]["series"]])]
    return {
        "embedded": line_chart(embedded or [("", [0] * minutes)], title="Images embedded per second", unit="img/s"),
        "latency": line_chart(latency, title="Search latency p95 (answered searches)", unit="ms"),
    }

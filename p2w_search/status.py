"""What the index holds and does, for the admin's index page and ``p2w_index status``."""

from django.db import connection

from p2w_search import index, indexing
from p2w_search.conf import app_settings
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage

__all__ = ["index_status", "queue_depths"]


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


def index_status(*, errors=10):
    """Counts by model and state, sizes, queues, last errors, and the progress of models being built."""
    images = ProductImage.objects.filter(in_index=True).count()
    models = []
    for model in EmbeddingModel.objects.order_by("-pk"):
        counts = indexing.model_progress(model)
        done = counts["ready"] + counts["failed"]
        models.append({
            "model": model, "counts": counts,
            "progress": done / counts["total"] if counts["total"] else 1.0,
            "complete": not counts["pending"] and not counts["missing"],
            "index_bytes": _relation_size(index.hnsw_index_name(model)),
        })
    return {
        "images": images,
        "serving": EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).first(),
        "models": models,
        "table_bytes": _relation_size(ImageEmbedding._meta.db_table),
        "queues": queue_depths(),
        "errors": list(ImageEmbedding.objects.filter(state=ImageEmbedding.State.FAILED)
                       .select_related("image", "model").order_by("-updated_at")[:errors]),
        "aliases": sorted(app_settings.EMBEDDERS),
    }

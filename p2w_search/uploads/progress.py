"""What a merchant polls: a job's rows, its images' embedding, and its first errors.

The answer is bounded whatever the job's size (the first ``IMPORT_ERRORS_SHOWN`` errors;
all of them are in the rejected-rows file), and so is its cost: the image counts are one
aggregate query while images are still embedding, and stored in the job once none is
pending, after which a poll reads one row.
"""

from django.db.models import Count

from p2w_search.models import EmbeddingModel, ImageEmbedding, ImportJob

__all__ = ["job_progress", "image_counts"]


def image_counts(job):
    """``{"images_total", "images_embedded", "images_failed"}`` of the job's images under the serving model."""
    if job.final_counts is not None:
        return job.final_counts
    serving = EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).first()
    total = job.images.filter(in_index=True).count()
    states = {}
    if serving is not None:
        states = dict(
            ImageEmbedding.objects.filter(image__import_jobs=job, image__in_index=True, model=serving)
            .values_list("state").annotate(n=Count("id")).order_by()
        )
    counts = {"images_total": total, "images_embedded": states.get(ImageEmbedding.State.READY, 0),
              "images_failed": states.get(ImageEmbedding.State.FAILED, 0)}
    if job.state in ImportJob.ENDED and counts["images_embedded"] + counts["images_failed"] == total:
        ImportJob.objects.filter(pk=job.pk).update(final_counts=counts)
        job.final_counts = counts
    return counts


def job_progress(job):
    """The poll answer of ``job`` (a dict; the API's JobSerializer documents its fields)."""
    return {
        "id": job.pk, "state": job.state, "policy": job.policy, "full_sync": job.full_sync,
        "confirm_unlist": job.confirm_unlist,
        "rows_total": job.rows_total, "rows_accepted": job.rows_accepted, "rows_rejected": job.rows_rejected,
        "products_unlisted": job.products_unlisted, "unlisted_skus": job.unlisted_skus,
        **image_counts(job),
        "errors": job.errors, "errors_total": job.errors_total, "message": job.message,
        "created_at": job.created_at, "updated_at": job.updated_at, "started_at": job.started_at,
        "ended_at": job.ended_at,
        "files": {field: bool(getattr(job, field)) for field in ("manifest", "archive", "rejected_rows")},
    }

"""Import jobs as the merchant pages show them: submitted like the API does, and their progress in parts.

A job's page and its progress answer render the same small templates
(``p2w_search/merchant/parts/<name>.html``), so the live page and a reload read the same.
"""

from django.db import transaction
from django.template.loader import render_to_string

from p2w_search import dispatch
from p2w_search.models import ImportJob
from p2w_search.uploads.progress import job_progress

__all__ = ["PARTS", "submit", "progress_context", "render_parts"]

# The parts of a job's page that its progress answer renders again.
PARTS = ("state", "rows", "images", "summary", "result")


def submit(*, owner, merchant_key, values):
    """Create the job of a valid upload (UploadSerializer.validated_data) and send it once it commits.

    What ``POST /api/imports/`` does (api/uploads.py, ImportListView.post): with Redis down
    the job is still saved, and the sweep sends it later.
    """
    job = ImportJob(owner=owner, merchant_key=merchant_key, policy=values["policy"], full_sync=values["full_sync"],
                    confirm_unlist=values.get("confirm_unlist"))
    job.manifest.save(values["manifest"].name, values["manifest"], save=False)
    archive = values.get("archive") or values.get("images")
    if archive:
        job.archive.save("images.zip", archive, save=False)
    with transaction.atomic():
        job.save()
        dispatch.send(dispatch.RUN_IMPORT, args=(job.pk,))
    return job


def progress_context(job):
    """What the parts of a job's page read: the job, its poll answer ``p``, and the states in words."""
    return {
        "job": job, "p": job_progress(job), "ended": job.state in ImportJob.ENDED,
        "manifest_name": job.manifest.name.rsplit("/", 1)[-1] if job.manifest else "",
    }


def render_parts(request, context):
    """``{part: html}`` of every part of a job's page."""
    return {name: render_to_string(f"p2w_search/merchant/parts/{name}.html", context, request) for name in PARTS}

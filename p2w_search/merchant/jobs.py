"""Import jobs as the merchant pages show them: submitted like the API does, and their progress in parts.

A job's page and its progress answer render the same small templates
(``p2w_search/merchant/parts/<name>.html``), so the live page and a reload read the same.
"""

from django.template.loader import render_to_string

from p2w_search.models import ImportJob
from p2w_search.uploads.importer import create_job
from p2w_search.uploads.progress import job_progress

__all__ = ["PARTS", "submit", "progress_context", "render_parts"]

# The parts of a job's page that its progress answer renders again.
PARTS = ("state", "rows", "images", "summary", "result")


def submit(*, owner, merchant_key, values):
    """Create the job of a valid upload and send it once it commits, as ``POST /api/imports/`` does."""
    return create_job(owner=owner, merchant_key=merchant_key, values=values)


def progress_context(job):
    """What the parts of a job's page read: the job, its poll answer ``p``, and the states in words."""
    return {
        "job": job, "p": job_progress(job), "ended": job.state in ImportJob.ENDED,
        "manifest_name": job.manifest.name.rsplit("/", 1)[-1] if job.manifest else "",
    }


def render_parts(request, context):
    """``{part: html}`` of every part of a job's page."""
    return {name: render_to_string(f"p2w_search/merchant/parts/{name}.html", context, request) for name in PARTS}

"""The merchant pages: thin doors onto the upload API's rules (api/uploads.py) and the import's progress."""

import logging

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from p2w_search.api import uploads as api
from p2w_search.merchant import catalog
from p2w_search.merchant.access import SESSION_KEY, api_rules, job_for, jobs_for, merchant_page, staff_choices
from p2w_search.merchant.forms import UploadForm, count_full_sync, flat_messages, upload_data, validate_upload
from p2w_search.merchant.jobs import progress_context, render_parts, submit
from p2w_search.merchant.template_csv import columns, template_csv
from p2w_search.uploads.importer import import_serializer
from p2w_search.uploads.limits import RETRY_AFTER_SECONDS as WAITING_RETRY_AFTER
from p2w_search.uploads.limits import TooManyWaiting, check_waiting
from p2w_search.uploads.manifest import ERROR_COLUMN
from p2w_search.uploads.progress import prefetch_progress

logger = logging.getLogger(__name__)

__all__ = ["home", "upload", "upload_check", "imports", "job", "job_progress", "job_file", "template",
           "embed_again", "act_for", "LoginView"]

TEMPLATES = "p2w_search/merchant/"
FAILED_SHOWN = 20  # failed images listed on the catalog page
LATEST_JOBS = 5
JOBS_PER_PAGE = 20

# A page that shows and takes a form; the others only show (require_safe) or only take (require_POST). Any other
# method is a 405: a DELETE of an upload's page answered 200 with the page, as if the upload were deleted.
require_form = require_http_methods(["GET", "HEAD", "POST"])


def _page(request, name, context, *, section, status=200):
    context = {"acting": getattr(request, "p2w_acting", None), "section": section, **context}
    return render(request, TEMPLATES + name, context, status=status)


@require_safe
@merchant_page
def home(request):
    """The catalog at a glance, its failed images, and the latest uploads."""
    merchant = request.p2w_acting.merchant
    failed = catalog.failed_images(merchant).select_related("product").prefetch_related("embeddings")
    return _page(request, "home.html", {
        "glance": catalog.glance(merchant),
        "failed": [(image, _failure(image)) for image in failed[:FAILED_SHOWN]],
        "jobs": [progress_context(job) for job in prefetch_progress(jobs_for(request)[:LATEST_JOBS])],
    }, section="home")


def _failure(image):
    return next((e.error for e in image.embeddings.all() if e.state == "failed" and e.error), "")


@require_form
@merchant_page
def upload(request):
    """The upload form; a valid upload becomes a job (as through the API), and the page follows it."""
    acting, count, errors, status = request.p2w_acting, None, None, 400
    if request.method == "POST":
        try:
            check_waiting(acting.key)  # before the files are checked; staff acting for a merchant count as it
            named = set()
            values, errors = validate_upload(upload_data(request), skus=named)
            if values is not None and values["full_sync"]:
                count = count_full_sync(named, acting.merchant, confirm=values.get("confirm_unlist"))
                if count.refusal:  # refused before anything happens, in the words the job would use
                    errors = {"confirm_unlist": [count.refusal]}
            if not errors:
                try:
                    job = submit(owner=request.user, merchant_key=acting.key, values=values)
                except OSError as exc:  # the upload storage refuses (a full disk); nothing was kept, as in the API
                    logger.error("could not store an upload of merchant %s: %s", acting.key, exc)
                    errors, status = {"manifest": [api.NOT_STORED]}, 503
                else:
                    return redirect("p2w_merchant:import", pk=job.pk)
        except TooManyWaiting as refusal:  # submit counts again, under the merchant's lock, and keeps no file then
            count, errors, status = None, {NON_FIELD_ERRORS: [str(refusal)]}, 429
        form = UploadForm(request.POST, request.FILES)
        form.show_errors(errors)
    else:
        form = UploadForm()
    response = _page(request, "upload.html", {
        "form": form, "count": count, "files_sent": bool(request.FILES), "columns": columns(),
        "error_column": ERROR_COLUMN,
    }, section="upload", status=status if errors else 200)
    if response.status_code == 429:
        response["Retry-After"] = str(WAITING_RETRY_AFTER)
    return response


@require_POST
@merchant_page(back="p2w_merchant:upload")
def upload_check(request):
    """Check a manifest before the upload (JSON): its errors, and what a full sync of it would unlist."""
    data = upload_data(request)
    fields = ("manifest", "full_sync", "confirm_unlist")
    sent = {name: data[name] for name in fields if data.get(name) not in (None, "")}
    sent.setdefault("full_sync", "false")
    count, status = None, 400
    try:
        check_waiting(request.p2w_acting.key)  # said when the file is chosen, before the images are sent
    except TooManyWaiting as refusal:
        values, errors, status = None, {NON_FIELD_ERRORS: [str(refusal)]}, 429
    else:
        named = set()
        values, errors = validate_upload(sent, partial=True, skus=named)
    if values is not None and values.get("full_sync") and values.get("manifest") is not None:
        count = count_full_sync(named, request.p2w_acting.merchant, confirm=values.get("confirm_unlist"))
    html = render_to_string(TEMPLATES + "parts/upload_check.html", {"errors": errors, "count": count}, request).strip()
    return JsonResponse({
        "errors": {name: list(flat_messages(texts)) for name, texts in (errors or {}).items()},
        "full_sync": None if count is None else {"unlist": count.unlist, "listed": count.listed, "skus": count.skus,
                                                 "refusal": count.refusal},
        "html": html,
    }, status=status if errors else 200)


@require_safe
@merchant_page
def imports(request):
    """The merchant's uploads, newest first, twenty a page."""
    page = Paginator(jobs_for(request), JOBS_PER_PAGE).get_page(request.GET.get("page"))
    jobs = prefetch_progress(page)  # their image counts at once, not three queries per job
    return _page(request, "imports.html", {"page": page, "jobs": [progress_context(job) for job in jobs]},
                 section="imports")


@require_safe
@merchant_page(needs_merchant=False)
def job(request, pk):
    """One upload: its progress (live), its errors, its files."""
    job = job_for(request, pk)
    context = progress_context(job)
    return _page(request, "job.html", {**context, "parts": render_parts(request, context),
                                       "merchant": _merchant_name(job)}, section="imports")


def _merchant_name(job):
    try:
        return str(import_serializer().merchant_by_key(job.merchant_key))
    except (ObjectDoesNotExist, ValueError):
        return job.merchant_key


@require_safe
@never_cache
@merchant_page(needs_merchant=False)
def job_progress(request, pk):
    """The progress of one upload (JSON): the poll answer and the page's parts rendered again."""
    context = progress_context(job_for(request, pk))
    return JsonResponse({"progress": context["p"], "parts": render_parts(request, context),
                         "finished": context["p"]["finished"]})


@require_safe
@merchant_page(needs_merchant=False)
def job_file(request, pk, name):
    """Download a file of one upload: the API's download, under the API's rule."""
    job = job_for(request, pk)
    with api_rules():
        try:
            return api.download(job, name)
        except api.FilesUnreadable as exc:
            return HttpResponse(str(exc.detail), status=exc.status_code, content_type="text/plain; charset=utf-8")


@require_safe
@merchant_page(needs_merchant=False)
def template(request):
    """The template CSV: a header and one example row."""
    response = HttpResponse(template_csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="catalog-template.csv"'
    return response


@require_POST
@merchant_page(back="p2w_merchant:home")
def embed_again(request):
    """Queue the merchant's failed embeddings again."""
    count = catalog.embed_failed_again(request.p2w_acting.merchant)
    messages.success(request, f"{count} failed images are queued to be embedded again.", fail_silently=True)
    return redirect("p2w_merchant:home")


@require_form
@merchant_page(needs_merchant=False)
def act_for(request):
    """Staff choose the merchant they act for (kept in the session)."""
    if not request.user.is_staff:
        return _page(request, "forbidden.html", {"reason": "Only staff choose a merchant to act for."},
                     section="", status=403)
    choices = staff_choices(request.user)
    target = request.POST.get("next") or request.GET.get("next") or ""
    # A path on this site only: redirect() would also take "x" for a URL name (a 500 when none has it).
    if not target.startswith("/") or not url_has_allowed_host_and_scheme(
            target, {request.get_host()}, require_https=request.is_secure()):
        target = ""
    error = None
    if request.method == "POST":
        key = request.POST.get("merchant", "")
        if key in {str(merchant.pk) for merchant in choices}:
            request.session[SESSION_KEY] = key
            return HttpResponseRedirect(target or reverse("p2w_merchant:home"))
        error = "Choose one of the merchants in the list."
    return _page(request, "act_for.html", {"choices": choices, "next": target, "error": error},
                 section="", status=400 if error else 200)


class LoginView(auth_views.LoginView):
    """Django's login page, where a ``next`` back to this page sends a logged-in user home.

    Django's own raises "Redirection loop for authenticated user detected" for it: a 500 for a link anyone can make.
    """

    def get_redirect_url(self):
        url = super().get_redirect_url()
        return "" if url.split("?", 1)[0] == self.request.path else url

"""The merchant pages: thin doors onto the upload API's rules (api/uploads.py) and the import's progress."""

import logging

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import (
    NON_FIELD_ERRORS,
    ObjectDoesNotExist,
    TooManyFilesSent,
)
from django.core.paginator import Paginator
from django.forms.utils import ErrorDict
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
    require_safe,
)

from p2w_search.api import uploads as api
from p2w_search.form_data import given_more_than_once
from p2w_search.merchant import catalog, logins
from p2w_search.merchant.access import (
    REQUEST_LIMITS,
    SESSION_KEY,
    api_rules,
    bad_request,
    job_for,
    jobs_for,
    merchant_page,
    read_request,
    request_refusal,
    staff_choices,
)
from p2w_search.merchant.forms import (
    UploadForm,
    asks_full_sync,
    count_full_sync,
    flat_messages,
    manifest_required,
    sent_more_than_once,
    too_many_files,
    upload_data,
    validate_upload,
)
from p2w_search.merchant.jobs import progress_context, render_parts, submit
from p2w_search.merchant.template_csv import columns, template_csv
from p2w_search.uploads import look_alike
from p2w_search.uploads.importer import RejectedRows, import_serializer
from p2w_search.uploads.limits import RETRY_AFTER_SECONDS as WAITING_RETRY_AFTER
from p2w_search.uploads.limits import TooManyWaiting, check_waiting
from p2w_search.uploads.manifest import ERROR_COLUMN
from p2w_search.uploads.progress import prefetch_progress

logger = logging.getLogger(__name__)

__all__ = ["home", "upload", "upload_check", "imports", "job", "job_progress", "job_file", "template",
           "embed_again", "act_for", "LoginView", "LogoutView"]

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
    return _home_page(request)


def _home_page(request, *, error=None, status=200):
    """The catalog page of the merchant acted for; ``error`` says why a form sent from it did nothing."""
    merchant = request.p2w_acting.merchant
    failed = catalog.failed_images(merchant).select_related("product").prefetch_related("embeddings")
    return _page(request, "home.html", {
        "glance": catalog.glance(merchant),
        "failed": [(image, _failure(image)) for image in failed[:FAILED_SHOWN]],
        "jobs": [progress_context(job) for job in prefetch_progress(jobs_for(request)[:LATEST_JOBS])],
        "error": error,
    }, section="home", status=status)


def _failure(image):
    return next((e.error for e in image.embeddings.all() if e.state == "failed" and e.error), "")


def _upload_refused(request, exc):
    """The upload page for a request over one of Django's limits: the form again, with the reason (400)."""
    if isinstance(exc, TooManyFilesSent):
        errors = {"images": [too_many_files()]}
    else:
        errors = {NON_FIELD_ERRORS: [request_refusal(exc)]}
    form = UploadForm()  # the form was not read: its initial values, and nothing of the request
    form.show_errors(errors)
    return _upload_page(request, form, files_sent=request.method == "POST", status=400)


def _check_refused(request, exc):
    """The upload check's answer for a request over one of Django's limits (400), in its own shape."""
    return _check_answer(request, {NON_FIELD_ERRORS: [request_refusal(exc)]}, None, status=400)


def _upload_page(request, form, *, count=None, files_sent=False, full=None, status=200):
    response = _page(request, "upload.html", {
        "form": form, "count": count, "files_sent": files_sent, "columns": columns(), "error_column": ERROR_COLUMN,
        "full": full,
    }, section="upload", status=status)
    if status == 429:
        response["Retry-After"] = str(WAITING_RETRY_AFTER)
    return response


@require_form
@merchant_page(refused=_upload_refused)
def upload(request):
    """The upload form; a valid upload becomes a job (as through the API), and the page follows it.

    A merchant with no place left for one more upload (``IMPORT_MAX_WAITING``) is told so by the
    page itself, in the words of the refusal, and gets no form: it would only be refused once sent.
    """
    acting, count, errors, status, full = request.p2w_acting, None, None, 400, None
    switched = _switched(request, acting) if request.method == "POST" else None
    if switched:  # nothing of the form is read: it was meant for another merchant
        errors, status = {NON_FIELD_ERRORS: [switched]}, 409
        form = UploadForm(request.POST, request.FILES)
        form.show_errors(errors)
    elif request.method == "POST":
        try:
            check_waiting(acting.key)  # before the files are checked; staff acting for a merchant count as it
            named, data = set(), upload_data(request)
            # A full sync's rows, read as the check reads them: a file of rows the import will all reject only
            # unlists (the no-row rule). Another upload does not need them.
            rejected = RejectedRows() if asks_full_sync(data) else None
            values, errors = None, sent_more_than_once(data)  # a field sent twice: neither value is read
            if not errors:
                values, errors = validate_upload(data, skus=named, rejected=rejected)
            if values is not None and values["full_sync"]:
                look_alike.foresee(rejected, import_serializer(), acting.merchant)
                count = count_full_sync(named, acting.merchant, confirm=values.get("confirm_unlist"),
                                        products=rejected.products)
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
            count, errors, status, full = None, {NON_FIELD_ERRORS: [str(refusal)]}, 429, str(refusal)
        form = UploadForm(request.POST, request.FILES)
        form.show_errors(errors)
    else:
        form = UploadForm()
        try:
            check_waiting(acting.key)  # said before the merchant chooses (and sends) files the POST would refuse
        except TooManyWaiting as refusal:
            full = str(refusal)
    return _upload_page(request, form, count=count, files_sent=bool(request.FILES), full=full,
                        status=status if errors else 200)


# The form's hidden field: the key of the merchant the upload page was opened for.
FORM_MERCHANT = "merchant"


def _switched(request, acting, *, outcome="Nothing was uploaded: check whom you act for, above, and upload again."):
    """Why a form opened for another merchant than the one ``acting`` is now is refused; None when it is not.

    Staff choose whom they act for in the session, shared by their tabs: a form opened for one merchant, sent after
    choosing another in a second tab, uploaded the first one's catalog (a full sync too) into the second's. Every
    POST form of these pages that acts for the session's merchant sends the field (upload, its check, embed again);
    a form without it (a script, a page of an earlier version) is taken as before. ``outcome`` says what was not
    done, and what to do.
    """
    sent = request.POST.getlist(FORM_MERCHANT)
    if not sent or all(key == acting.key for key in sent):
        return None
    return (f"This form was opened for another merchant than the one you act for now, {acting.merchant} (chosen on "
            f"another page). {outcome}")


# The check cannot be sent again from the same page: its form still names the merchant it was opened for.
CHECK_SWITCHED = "The file was not checked: check whom you act for, above, and open the upload page again."


@require_POST
@merchant_page(back="p2w_merchant:upload", refused=_check_refused)
def upload_check(request):
    """Check a manifest before the upload (JSON): its errors, what a full sync of it would unlist, and the rows the
    import will reject for their SKUs (warnings: the import takes the others)."""
    switched = _switched(request, request.p2w_acting, outcome=CHECK_SWITCHED)
    if switched:  # the upload's 409: a full sync would be counted against a merchant the form was not opened for
        return _check_answer(request, {NON_FIELD_ERRORS: [switched]}, None, status=409)
    data = upload_data(request)
    fields = ("manifest", "full_sync", "confirm_unlist")
    sent = {name: data[name] for name in fields if data.get(name) not in (None, "")}
    sent.setdefault("full_sync", "false")
    count, status, named, rejected = None, 400, set(), RejectedRows()
    try:
        check_waiting(request.p2w_acting.key)  # said when the file is chosen, before the images are sent
    except TooManyWaiting as refusal:
        values, errors, status = None, {NON_FIELD_ERRORS: [str(refusal)]}, 429
    else:
        values, errors = None, sent_more_than_once(data, fields)  # a field sent twice: neither value is checked
        if not errors:
            values, errors = validate_upload(sent, partial=True, skus=named, rejected=rejected)
            if "manifest" not in sent:  # partial: the serializer would not ask for it; a check of nothing is no pass
                values, errors = None, {"manifest": [manifest_required()], **(errors or {})}
    if values is not None and values.get("manifest") is not None:  # read through: the SKUs the catalog refuses too
        look_alike.foresee(rejected, import_serializer(), request.p2w_acting.merchant)
    if values is not None and values.get("full_sync") and values.get("manifest") is not None:
        # With the products the rows may give: none of them, and the import refuses the sync unless confirmed.
        count = count_full_sync(named, request.p2w_acting.merchant, confirm=values.get("confirm_unlist"),
                                products=rejected.products)
    return _check_answer(request, errors, count, status=status if errors else 200,
                         rejected=None if errors else rejected)


def _check_answer(request, errors, count, *, status, rejected=None):
    """The check's JSON; its ``html`` says what is wrong, what a full sync unlists, or that the file reads well, so
    that a merchant sees the check ran. ``full_sync``: what a full sync of the file unlists (``unlist`` of
    ``listed``, the first ``skus``), whether the import will take no row of it (``accepts_no_row``: it would only
    unlist, and runs only with ``confirm_unlist``), and the import's ``refusal`` of it as it stands. From
    ``rejected`` (a RejectedRows' ``findings``, which the API's upload answers too; None when the file was not read
    through, and these are null): ``products``, how many products the import may add or update (its rows less those
    it rejects, each SKU once); ``rows``, the rows it will reject, ``{"rejected": count, "errors": [{"row", "field",
    "reason"}]}`` of the first ``ROWS_SHOWN`` of them; ``scientific``, the rows whose SKU looks like a number a
    spreadsheet wrote in scientific notation, ``{"count": count, "skus": [{"row", "sku"}]}`` (a warning)."""
    found = rejected.findings() if rejected is not None else {"products": None, "rows": None, "scientific": None}
    rows, scientific = found["rows"], found["scientific"]
    html = render_to_string(TEMPLATES + "parts/upload_check.html", {
        "errors": errors, "count": count, **found,
        "rows_read": rejected.rows if rejected is not None else None,
        "rows_shown": len({error["row"] for error in rows["errors"]}) if rows else 0,
        "scientific_more": scientific["count"] - len(scientific["skus"]) if scientific else 0,
    }, request).strip()
    return JsonResponse({
        "errors": {name: list(flat_messages(texts)) for name, texts in (errors or {}).items()},
        "full_sync": None if count is None else {"unlist": count.unlist, "listed": count.listed, "skus": count.skus,
                                                 "refusal": count.refusal, "accepts_no_row": count.accepts_no_row},
        **found,
        "html": html,
    }, status=status)


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
@merchant_page(needs_merchant=False)
@never_cache  # inside: merchant_page's private, no-store adds nothing to it, and its answer reads as before
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


# Said on the catalog page of the merchant acted for now, whose form names that merchant.
EMBED_SWITCHED = "Nothing was queued to be embedded again: check whom you act for, above, and send the form again."


@require_POST
@merchant_page(back="p2w_merchant:home")
def embed_again(request):
    """Queue the merchant's failed embeddings again; from a catalog page opened for another merchant, nothing (409)."""
    switched = _switched(request, request.p2w_acting, outcome=EMBED_SWITCHED)
    if switched:  # the catalog of the merchant acted for now, with its own form, and why nothing was queued
        return _home_page(request, error=switched, status=409)
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
    # A field sent twice: which merchant (or page after) was meant is unknown; neither is taken.
    repeated = given_more_than_once(request.POST, ("merchant", "next")) if request.method == "POST" else {}
    target = "" if "next" in repeated else request.POST.get("next") or request.GET.get("next") or ""
    # A path on this site only: redirect() would also take "x" for a URL name (a 500 when none has it).
    if not target.startswith("/") or not url_has_allowed_host_and_scheme(
            target, {request.get_host()}, require_https=request.is_secure()):
        target = ""
    error = None
    if repeated:
        error = " ".join(repeated.values())
    elif request.method == "POST":
        key = request.POST.get("merchant", "")
        if key in {str(merchant.pk) for merchant in choices}:
            request.session[SESSION_KEY] = key
            return HttpResponseRedirect(target or reverse("p2w_merchant:home"))
        error = "Choose one of the merchants in the list."
    return _page(request, "act_for.html", {"choices": choices, "next": target, "error": error},
                 section="", status=400 if error else 200)


class _ReadFirst:
    """Read a page's query string and form before Django's CSRF middleware does (see ``merchant_page``).

    A request over one of Django's limits is then a 400 merchant page that names the limit, not the
    shop's generic 400 page; the token is checked by the view's own ``csrf_protect`` once the form is read.
    """

    @method_decorator(csrf_exempt)
    @method_decorator(never_cache)
    def dispatch(self, request, *args, **kwargs):
        if request.method.lower() in self.http_method_names:  # else the view's own 405
            try:
                read_request(request)
            except REQUEST_LIMITS as exc:
                return bad_request(request, request_refusal(exc))
        return super().dispatch(request, *args, **kwargs)


class LogoutView(_ReadFirst, auth_views.LogoutView):
    """Django's logout (POST), whose form Django refuses to read is a merchant page that says why."""


class LoginView(_ReadFirst, auth_views.LoginView):
    """Django's login page, where a ``next`` back to this page sends a logged-in user home.

    Django's own raises "Redirection loop for authenticated user detected" for it: a 500 for a link anyone can make.
    Failed logins are counted per address and username (``logins``): past ``LOGIN_FAILURE_RATE`` the form is
    refused (429) before the password is looked at. Each attempt takes its place in the count before its password
    is tried (attempts in parallel cannot all pass); a failed one keeps it, one that succeeds gives it back.
    A field sent twice is refused (400, naming it) before either value is read: no password is tried, none counted.
    """

    ONCE = ("username", "password", "next")

    def post(self, request, *args, **kwargs):
        repeated = given_more_than_once(request.POST, self.ONCE)
        if repeated:
            return self._refused({name if name in ("username", "password") else None: reason
                                  for name, reason in repeated.items()}, status=400)
        username = request.POST.get("username", "")
        wait, whose = logins.attempt(request, username)  # a place in the count, taken before the password is tried
        if not wait:
            return super().post(request, *args, **kwargs)
        response = self._refused({None: logins.refusal(wait, whose)}, status=429)
        response["Retry-After"] = str(wait)
        return response

    def _refused(self, errors, *, status):
        """The form again with ``errors`` ({field or None: reason}), not validated: that would try the password."""
        form = self.get_form()
        form.cleaned_data, form._errors = {}, ErrorDict()
        for name, reason in errors.items():
            form.add_error(name, reason)
        return self.render_to_response(self.get_context_data(form=form), status=status)

    def form_valid(self, form):
        logins.succeeded(self.request, self.request.POST.get("username", ""))
        return super().form_valid(form)

    def get_redirect_url(self):
        if len(self.request.POST.getlist(self.redirect_field_name)) > 1:  # neither of two is followed (nor kept)
            return ""
        url = super().get_redirect_url()
        return "" if url.split("?", 1)[0] == self.request.path else url

"""Who may use the merchant pages, and for which merchant: the upload API's rules, seen from a page.

A merchant user acts for its own merchant; staff act for any merchant the import
serializer's optional ``merchants_for_staff(user)`` lists (their choice is kept in the
session), or for their own. A page acting for a merchant shows that merchant's jobs; one job's
page shows it to whoever acts for its merchant or sees it through the API's ``visible_jobs``.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from rest_framework import exceptions as api_exceptions

from p2w_search.api import uploads as api
from p2w_search.api.parsers import limit_exceeded
from p2w_search.models import ImportJob
from p2w_search.uploads.importer import import_serializer

__all__ = ["SESSION_KEY", "Acting", "login_url", "acting_for", "staff_choices", "merchant_page", "api_rules",
           "REQUEST_LIMITS", "read_request", "request_refusal", "bad_request", "jobs_for", "job_for"]

# The merchant a staff member chose to act for (its key).
SESSION_KEY = "p2w_merchant_key"

FORBIDDEN = "p2w_search/merchant/forbidden.html"
NOT_FOUND = "p2w_search/merchant/not_found.html"
BAD_REQUEST = "p2w_search/merchant/bad_request.html"

# Django's limits on what one request holds (DATA_UPLOAD_MAX_NUMBER_FILES, DATA_UPLOAD_MAX_NUMBER_FIELDS,
# DATA_UPLOAD_MAX_MEMORY_SIZE): SuspiciousOperations, raised when the query string or the form is first read.
REQUEST_LIMITS = (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig)


@dataclass(frozen=True)
class Acting:
    """The merchant a request acts for: its key (as ImportJob.merchant_key), the merchant, and who may switch."""

    key: str
    merchant: object
    choices: list = field(default_factory=list)  # the merchants a staff member may switch to; [] for a merchant


def login_url():
    """The host's ``LOGIN_URL`` when it set one, else the merchant pages' own login page."""
    if settings.is_overridden("LOGIN_URL"):
        return settings.LOGIN_URL
    return reverse("p2w_merchant:login")


def staff_choices(user):
    """The merchants staff member ``user`` may act for (the serializer's ``merchants_for_staff``), own one included."""
    serializer = import_serializer()
    listed = getattr(serializer, "merchants_for_staff", None)
    choices = list(listed(user)) if listed is not None and user.is_staff else []
    own = serializer.merchant_for(user)
    if own is not None and all(merchant.pk != own.pk for merchant in choices):
        choices.insert(0, own)
    return choices


def acting_for(request):
    """The Acting of ``request``; None for staff yet to choose; PermissionDenied for a user who is no merchant."""
    user = request.user
    if not user.is_staff:
        with api_rules():
            key = api.merchant_key(user)  # the API's rule and its message
        return Acting(key, import_serializer().merchant_by_key(key))
    choices = staff_choices(user)
    by_key = {str(merchant.pk): merchant for merchant in choices}
    own = import_serializer().merchant_for(user)
    chosen = request.session.get(SESSION_KEY)
    if chosen in by_key:
        return Acting(chosen, by_key[chosen], choices)
    if own is not None:
        return Acting(str(own.pk), own, choices)
    return None


@contextmanager
def api_rules():
    """Turn the API's refusals (DRF exceptions) into Django's, so a page answers 403 or 404 with the same words."""
    try:
        yield
    except api_exceptions.PermissionDenied as exc:
        raise PermissionDenied(str(exc.detail)) from None
    except api_exceptions.NotFound as exc:
        raise Http404(str(exc.detail)) from None


def read_request(request):
    """Read the query string and the form now: one of ``REQUEST_LIMITS`` is raised here, not in a view or a template."""
    len(request.GET)  # each read of a form Django refuses raises again: a page that answers reads none of it
    if request.method == "POST":
        len(request.POST), len(request.FILES)


def request_refusal(exc):
    """The words of the API for one of ``REQUEST_LIMITS``: which limit, and the most this site takes."""
    return str(limit_exceeded(exc).detail)


def bad_request(request, reason):
    """A merchant page that says why a request was not read (400). Nothing of the request is read again."""
    return render(request, BAD_REQUEST, {"reason": reason, "acting": getattr(request, "p2w_acting", None)},
                  status=400)


def merchant_page(view=None, *, needs_merchant=True, back=None, refused=None):
    """Decorate a page for merchants: log in first, 403 in words for users who are no merchant.

    With ``needs_merchant`` the page acts for one merchant (``request.p2w_acting``); staff
    who have not chosen one are sent to choose. Logging in or choosing ends with a GET of
    the page asked, so a view that answers POST only names in ``back`` (a URL name) the page
    to come back to: coming back to the view itself was a 405. The view's own 404 and 403
    are merchant pages that say why, in the API's words: the shop's 404 page (the demo's
    "the product may have been removed") and Django's bare "403 Forbidden" said nothing of
    a job or a file.

    A request over one of Django's limits on a request (``REQUEST_LIMITS``: too many files,
    fields or query parameters) is a 400 merchant page that names the limit, or what
    ``refused(request, exc)`` answers: Django's own answer was the shop's generic 400 page.
    Django's CSRF middleware reads the form before any view runs, so the page is exempt
    from the middleware and checks the CSRF token itself, once the form has been read.

    Every answer, a redirect or a refusal too, is ``Cache-Control: private, no-store``
    (``api.private_to_merchant``): the pages are one merchant's, and a shared proxy or a
    browser's back/forward cache on a shared computer could keep them.
    """
    def decorate(view):
        protected = csrf_protect(view)

        @wraps(view)
        def page(request, *args, **kwargs):
            here = reverse(back) if back is not None else request.get_full_path()
            if not request.user.is_authenticated:
                return redirect_to_login(here, login_url())
            try:
                acting = acting_for(request)
            except PermissionDenied as exc:
                return render(request, FORBIDDEN, {"reason": str(exc)}, status=403)
            if acting is None and needs_merchant:
                return redirect(f"{reverse('p2w_merchant:act-for')}?{urlencode({'next': here})}")
            request.p2w_acting = acting
            try:
                read_request(request)
            except REQUEST_LIMITS as exc:
                return refused(request, exc) if refused is not None else bad_request(request, request_refusal(exc))
            try:
                return protected(request, *args, **kwargs)
            except Http404 as exc:
                return render(request, NOT_FOUND, {"reason": str(exc), "acting": acting}, status=404)
            except PermissionDenied as exc:
                return render(request, FORBIDDEN, {"reason": str(exc), "acting": acting}, status=403)
        return csrf_exempt(api.private_to_merchant(page))  # protected (csrf_protect) checks the token after reading
    return decorate(view) if view is not None else decorate


def jobs_for(request):
    """The jobs of the merchant ``request`` acts for (``acting_for`` checked that its user may act for it)."""
    return ImportJob.objects.filter(merchant_key=request.p2w_acting.key)


def job_for(request, pk):
    """Job ``pk`` if it is the acting merchant's or the API shows it to the user, else Http404 in the API's words.

    Staff whom the API refuses (no permission to view import jobs, no merchant of their own) but who act for a
    merchant get that merchant's 404 for any other id: the API's 403 ("this account belongs to no merchant")
    contradicted the merchant the page names, and read the same for an upload and for none anyway.
    """
    acting = request.p2w_acting
    job = jobs_for(request).filter(pk=pk).first() if acting is not None else None
    if job is None:
        try:
            with api_rules():
                job = api.visible_jobs(request.user).filter(pk=pk).first()
        except PermissionDenied:
            if acting is None:
                raise
    if job is None:
        raise Http404("You have no upload with this id.")
    return job

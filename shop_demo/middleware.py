"""The demo shop's answer when PostgreSQL cannot be reached: a 503 that says so, with Retry-After, not a 500.

PostgreSQL not answering (stopped, restarting, out of connections) reaches a view as Django's
``OperationalError`` or ``InterfaceError``, from any page: the storefront, the products API,
the merchant pages, the login, the admin. It passes, so the answer is "come back shortly":
JSON under ``/api/`` (as the app's own API views answer it, p2w_search/api/outages.py), a
page elsewhere, rendered without the request so that it reads nothing from the database.
The same web process answers again once the database is back: Django opens a new connection,
and ``CONN_HEALTH_CHECKS`` replaces a kept one (``CONN_MAX_AGE``) that the restart ended.
"""

from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from p2w_search.api.outages import RETRY_AFTER_SECONDS, DatabaseUnavailable, database_down

__all__ = ["DatabaseUnavailableMiddleware"]


class DatabaseUnavailableMiddleware:
    """Answer a view's (or its template's) database outage with a 503; any other exception is left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not database_down(request, exception):
            return None
        message = DatabaseUnavailable.default_detail
        if request.path_info.startswith("/api/"):
            response = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(render_to_string("503.html", {"message": message}), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

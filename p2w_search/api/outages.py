"""The API's answer when PostgreSQL cannot be reached: a 503 in JSON that says so, with Retry-After, not a 500.

PostgreSQL not answering (stopped, restarting, out of connections) reaches a view as Django's
``OperationalError`` or ``InterfaceError``. That is the server's problem, not the request's,
and it passes: the client is told to come back, and the same web process answers again once
the database is back (Django opens a new connection; ``CONN_MAX_AGE`` with
``CONN_HEALTH_CHECKS`` replaces a kept one that the restart ended). The API's views answer it
themselves, so a host shop's own 500 handling never sees it.
"""

import logging

from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import APIException

__all__ = ["DatabaseUnavailable", "DatabaseOutageMixin", "RETRY_AFTER_SECONDS", "database_down"]

RETRY_AFTER_SECONDS = 30

logger = logging.getLogger(__name__)


class DatabaseUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The catalog database cannot be reached right now; nothing was changed. Try again shortly."
    default_code = "database_unavailable"
    wait = RETRY_AFTER_SECONDS  # DRF's exception handler sends it as Retry-After


def database_down(request, exc):
    """Whether ``exc`` says the database cannot be reached (then logged, with the request it failed)."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    logger.error("%s %s: the database cannot be reached (%s: %s)", request.method, request.path,
                 type(exc).__name__, exc)
    return True


class DatabaseOutageMixin:
    """For a DRF view: a database that cannot be reached is a 503 (DatabaseUnavailable), logged once."""

    def handle_exception(self, exc):
        if database_down(self.request, exc):
            exc = DatabaseUnavailable()
        return super().handle_exception(exc)

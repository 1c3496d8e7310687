"""The anonymous search budget: searches per client address, counted when a search ran.

The client's address is the connection's own, or, behind reverse proxies that the
deployment declares (DRF's ``NUM_PROXIES``), the one the nearest of them saw: a made-up
``X-Forwarded-For`` from the client itself never buys a new budget. A search refused for
its own input (a 4xx) costs the shopper nothing; one that was answered, or that reached
the encoding workers and timed out (5xx), is counted. An OPTIONS request searches nothing (a
browser's CORS preflight asks one before each JSON search): it is never counted, and never
refused, even once the budget is spent, or the browser would report the next search as failed
without the 429 that says why.

The counts live in Django's default cache (Redis in the demo). A cache that cannot be reached
is logged and counts nothing: searches go on unlimited until it is back (as the failed-login
count does, p2w_search/merchant/logins.py), rather than every search answering 500.
"""

import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle

from p2w_search.conf import app_settings

__all__ = ["AnonSearchThrottle", "client_address", "counts", "searches"]

logger = logging.getLogger(__name__)


def client_address(request):
    """The address the search budget is kept for (``request`` is Django's or DRF's)."""
    meta = request.META
    remote = meta.get("REMOTE_ADDR")
    proxies = api_settings.NUM_PROXIES or 0  # DRF trusts any X-Forwarded-For when None: we trust none
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return remote


def searches(request):
    """Whether ``request`` (Django's or DRF's) runs a search: an OPTIONS request only asks what the endpoint allows."""
    return request.method != "OPTIONS"


def counts(status_code):
    """Whether an answer with ``status_code`` is counted against the budget."""
    return status_code < 400 or status_code >= 500


class AnonSearchThrottle(AnonRateThrottle):
    """Anonymous searches per client address, at ``P2W_SEARCH["ANON_SEARCH_RATE"]`` (None: unlimited).

    ``allow_request`` only looks at the budget; ``spend`` counts a search once it was answered.
    """

    scope = "p2w_search_anon"

    def get_rate(self):
        return app_settings.ANON_SEARCH_RATE

    def get_ident(self, request):
        return client_address(request)

    def allow_request(self, request, view):
        if self.rate is None or not searches(request):
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:  # signed-in users are not throttled here
            return True
        self.now = self.timer()
        self.history = [t for t in self._read(self.key) if t > self.now - self.duration]
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return True

    def spend(self, request):
        """Count one search of ``request``'s client."""
        if self.rate is None or not searches(request):
            return
        key = self.get_cache_key(request, None)
        if key is None:
            return
        now = self.timer()
        history = [t for t in self._read(key) if t > now - self.duration]
        try:
            self.cache.set(key, [now, *history], self.duration)
        except Exception as exc:  # the cache's own errors (redis.ConnectionError, ...): no common base class
            _cache_down(exc)

    def _read(self, key):
        """The search times kept for ``key``; none when the cache cannot be reached."""
        try:
            return self.cache.get(key, [])
        except Exception as exc:
            _cache_down(exc)
            return []


def _cache_down(exc):
    logger.error("anonymous searches are not counted: the cache is unavailable (%s: %s)", type(exc).__name__, exc)

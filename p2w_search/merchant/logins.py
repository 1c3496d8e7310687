"""Failed logins on the merchant pages, counted per client address and username.

A password cannot be guessed at the speed of the login form: after ``LOGIN_FAILURE_RATE``
failures (``"10/hour"``: DRF's rate syntax) for one username from one address, the page
refuses the next attempt (429, with ``Retry-After``) without looking at the password, until
the oldest failure is a period old. A login that succeeds forgets its failures. The count is
kept in Django's default cache (Redis in the demo), so every web process shares it; the
address is the one the anonymous search budget uses (behind the proxies the deployment
declares). Another username from the same address, or the same one from another address,
has its own count: a stranger cannot lock a merchant out from elsewhere.
"""

import hashlib
import time

from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from p2w_search.conf import app_settings
from p2w_search.throttling import client_address

__all__ = ["refused_for", "failed", "succeeded", "refusal"]


def _rate():
    """``(failures, seconds)`` of ``LOGIN_FAILURE_RATE``, or None for no limit."""
    rate = app_settings.LOGIN_FAILURE_RATE
    return None if rate is None else SimpleRateThrottle.parse_rate(None, rate)


def _key(request, username):
    ident = f"{client_address(request)}\0{(username or '').casefold()}"
    return "p2w_login_failures:" + hashlib.sha256(ident.encode()).hexdigest()


def _recent(request, username, seconds):
    now = time.time()
    return [t for t in cache.get(_key(request, username), []) if t > now - seconds], now


def refused_for(request, username):
    """Seconds until ``username`` may try again from this address (0: it may now)."""
    rate = _rate()
    if rate is None:
        return 0
    failures, seconds = rate
    recent, now = _recent(request, username, seconds)
    if len(recent) < failures:
        return 0
    return max(1, int(recent[-failures] + seconds - now) + 1)


def failed(request, username):
    rate = _rate()
    if rate is None:
        return
    failures, seconds = rate
    recent, now = _recent(request, username, seconds)
    cache.set(_key(request, username), [*recent[-(failures - 1):], now] if failures > 1 else [now], seconds)


def succeeded(request, username):
    cache.delete(_key(request, username))


def refusal(wait):
    if wait >= 60:
        minutes = -(-wait // 60)
        when = f"{minutes} minute{'' if minutes == 1 else 's'}"
    else:
        when = f"{wait} second{'' if wait == 1 else 's'}"
    return (f"Too many failed logins for this username from your address: try again in {when}. "
            "Ask the shop's staff to reset the password if it is lost.")

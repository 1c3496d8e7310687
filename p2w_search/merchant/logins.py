"""Failed logins on the merchant pages, counted per client address and username.

A password cannot be guessed at the speed of the login form: after ``LOGIN_FAILURE_RATE``
failures (``"10/hour"``: DRF's rate syntax) for one username from one address, the page
refuses the next attempt (429, with ``Retry-After``) without looking at the password, until
the oldest failure is a period old. A login that succeeds forgets its failures. The count is
kept in Django's default cache (Redis in the demo), so every web process shares it; the
address is the one the anonymous search budget uses (behind the proxies the deployment
declares; an IPv6 address by its /64). Another username from the same address, or the same one from another address,
has its own count: a stranger cannot lock a merchant out from elsewhere. One address has a
ceiling over all its usernames too (``ADDRESS_FACTOR`` times the rate): one password tried on
many usernames, each a cache key of its own, is refused past it.

An attempt takes its place in the count before its password is tried, each place a cache
key that ``cache.add`` takes atomically: attempts sent in parallel cannot all see "no
failure yet" and try more passwords than the rate. The place is given back when the login
succeeds; a failure keeps it for a period. Usernames are counted as the login form reads
them (stripped, NFKC: ``UsernameField``), then case- and accent-folded, so that every
spelling the backend takes for one user, on any collation, shares one count.

Another login page (the Django admin's, a host shop's own) gets the same count by wrapping its
view in ``limit_failed_logins``.

A cache that is down is logged and counts nothing (the password alone decides): a cache
outage must not lock every merchant out, nor be a 500.
"""

import functools
import hashlib
import ipaddress
import logging
import time
import unicodedata

from django.contrib import messages
from django.contrib.auth.forms import UsernameField
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from p2w_search.conf import app_settings
from p2w_search.throttling import client_address

__all__ = ["ADDRESS_FACTOR", "username_key", "attempt", "succeeded", "refusal", "limit_failed_logins"]

logger = logging.getLogger(__name__)

# One address may fail this many times the rate's count in a period, over all the usernames it tries.
ADDRESS_FACTOR = 10

PREFIX = "p2w_login_failures:"


def _rate():
    """``(failures, seconds)`` of ``LOGIN_FAILURE_RATE``, or None for no limit."""
    rate = app_settings.LOGIN_FAILURE_RATE
    return None if rate is None else SimpleRateThrottle.parse_rate(None, rate)


def username_key(username):
    """The one spelling of every username the login form and the backend take for the same user."""
    text = UsernameField().to_python(username)  # AuthenticationForm's own cleaning: stripped, NFKC
    # Then case- and accent-folded: a backend or a collation that ignores either takes more spellings as one user.
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    folded = "".join(char for char in folded if not unicodedata.combining(char))
    return unicodedata.normalize("NFKC", folded).strip()


def _hash(*parts):
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _address(request):
    """The client address counted: an IPv6 one by its /64, which one subscriber holds whole (2**64 addresses)."""
    address = client_address(request) or ""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def _places(request, username, failures):
    """The cache keys of one username's places from this address, and of the address's own."""
    address = _address(request)
    user = _hash(address, username_key(username))
    return ([f"{PREFIX}{user}:{n}" for n in range(failures)],
            [f"{PREFIX}a:{_hash(address)}:{n}" for n in range(failures * ADDRESS_FACTOR)])


def _take(keys, now, seconds):
    """Take the first free place of ``keys`` (True), or say none is free (False)."""
    taken = cache.get_many(keys)
    return any(cache.add(key, now, seconds) for key in keys if key not in taken)


def _wait(keys, now, seconds):
    oldest = min(cache.get_many(keys).values(), default=now)
    return max(1, int(oldest + seconds - now) + 1)


def _unavailable(exc):
    logger.error("failed logins are not counted: the cache is unavailable (%s: %s)", type(exc).__name__, exc)


def attempt(request, username):
    """Take a place for one attempt before its password is tried.

    ``(0, None)`` when it may be tried, else ``(seconds to wait, whose count is full: "username" or "address")``.
    """
    rate = _rate()
    if rate is None:
        return 0, None
    failures, seconds = rate
    now = time.time()
    mine, address = _places(request, username, failures)  # outside the try: a bug here is no cache outage
    try:
        if not _take(mine, now, seconds):
            return _wait(mine, now, seconds), "username"
        if not _take(address, now, seconds):
            _give_back(mine, now)
            return _wait(address, now, seconds), "address"
    except Exception as exc:  # noqa: BLE001 - Redis down (ConnectionError, TimeoutError, its own)
        _unavailable(exc)
    return 0, None


def _give_back(keys, now):
    """Give back the place taken at ``now`` (an attempt refused for another count tried no password)."""
    for key, value in cache.get_many(keys).items():
        if value == now:
            cache.delete(key)
            return


def succeeded(request, username):
    """Forget the username's failures from this address, and its place in the address's."""
    rate = _rate()
    if rate is None:
        return
    failures, seconds = rate
    mine, address = _places(request, username, failures)
    try:
        cache.delete_many(mine)
        now = time.time()
        latest = max(cache.get_many(address).items(), key=lambda item: item[1], default=None)
        if latest is not None and latest[1] > now - seconds:
            cache.delete(latest[0])
    except Exception as exc:  # noqa: BLE001
        _unavailable(exc)


def refusal(wait, whose="username"):
    if wait >= 60:
        minutes = -(-wait // 60)
        when = f"{minutes} minute{'' if minutes == 1 else 's'}"
    else:
        when = f"{wait} second{'' if wait == 1 else 's'}"
    which = "for this username from your address" if whose == "username" else "from your address"
    return (f"Too many failed logins {which}: try again in {when}. "
            "Ask the shop's staff to reset the password if it is lost.")


def limit_failed_logins(login_view):
    """``login_view``, any Django login view (the admin's ``admin.site.login``, a shop's own), with this count.

    A POST takes its place before the view tries the password. Past the rate the view is not asked to: its login
    page is shown as a GET shows it, with the refusal as a message (``django.contrib.messages``, which the admin's
    page lists), answered 429 with ``Retry-After``. A POST after which the user is logged in and sent on gives its
    place back.
    """

    @functools.wraps(login_view)
    def view(request, *args, **kwargs):
        if request.method != "POST":
            return login_view(request, *args, **kwargs)
        username = request.POST.get("username", "")  # AuthenticationForm's field, whatever USERNAME_FIELD is
        wait, whose = attempt(request, username)
        if not wait:
            response = login_view(request, *args, **kwargs)
            if response.status_code in (301, 302, 303) and request.user.is_authenticated:
                succeeded(request, username)
            return response
        messages.error(request, refusal(wait, whose), fail_silently=True)
        request.method = "GET"  # the page without a form to read: nothing is tried
        response = login_view(request, *args, **kwargs)
        response.status_code = 429
        response["Retry-After"] = str(wait)
        return response

    return view

"""How search is doing: latency percentiles and answer counts of the last minutes, kept cheaply.

Every answer of a search endpoint is recorded (``record``) in a bucket of its minute in the
cache the shop configures (``P2W_SEARCH["SEARCH_HEALTH_CACHE"]``, ``"default"``; None turns
recording off): a count per status code, and for answered searches (2xx) a histogram of
each ``Server-Timing`` phase (``encode``, ``queue``, ``sql``, ``serialize``, ``total``) on
fixed, logarithmic bins, with the phase's sum for its mean. A bucket expires after
``KEEP_MINUTES``, so what is kept is bounded whatever the traffic: at most one bucket a
minute, each with at most ``len(BOUNDS) + 1`` bins per endpoint and phase.

A search only adds its counts to a dict of its process, under a lock (microseconds); a
daemon thread of the process writes them to the cache every ``FLUSH_SECONDS``, and
``summary`` writes the process's own first. So the page lags the searches of other web
processes by ``FLUSH_SECONDS`` at most, and the cache sees one write a second per process
whatever the traffic. On Django's ``RedisCache`` a write is one pipelined round trip of
``HINCRBY`` and counts from every web process add up exactly. Other cache backends keep
one dict per minute, read and written back under a lock of this process: exact for a
per-process cache such as ``LocMemCache``; with a cache shared by several processes, two
that write the same minute at the same instant can lose one of the two writes.

Percentiles come from the bins: within a factor ``2 ** (1 / BINS_PER_OCTAVE)`` (19 %) of
the exact value, usually far closer (interpolated within the bin). Recording never raises
and never waits on the cache: a cache out of reach is logged, its counts are dropped, and
it is not tried again for ``RETRY_AFTER`` seconds.
"""

import atexit
import logging
import math
import os
import threading
import time

from django.core.cache import caches
from django.core.signals import got_request_exception
from django.dispatch import receiver

from p2w_search.conf import app_settings

__all__ = [
    "KEEP_MINUTES", "BOUNDS", "WINDOWS", "FLUSH_SECONDS", "record", "flush", "endpoint_name", "summary", "percentile",
    "cache_alias",
]

logger = logging.getLogger(__name__)

KEEP_MINUTES = 60
WINDOWS = (5, 60)  # minutes that the admin page, `p2w_index status` and `doctor` report on
BINS_PER_OCTAVE = 4
SMALLEST_MS = 0.25
# Upper bounds of the latency bins, in ms: 0.25 ms to about 78 s; a longer time goes to the last bin.
BOUNDS = [SMALLEST_MS * 2 ** (i / BINS_PER_OCTAVE) for i in range(BINS_PER_OCTAVE * 18 + 1)]
RETRY_AFTER = 10.0
FLUSH_SECONDS = 1.0
SEARCH_URL_PREFIX = "search-"  # the url names of p2w_search.api.urls

# This process's counts not written yet, {(alias, minute): {field: n}}, and its flusher thread.
_state = {"pending": {}, "flusher": None, "lock": threading.Lock(), "flushing": threading.Lock(),
          "store_lock": threading.Lock()}
_down_until = {}  # alias: time.monotonic() before which its cache is not tried again


def _after_fork():
    # A forked child (a web server's worker) starts empty: its parent's counts are its parent's to write,
    # and a lock another thread of the parent held would never be released here.
    _state.update(pending={}, flusher=None, lock=threading.Lock(), flushing=threading.Lock(),
                  store_lock=threading.Lock())


os.register_at_fork(after_in_child=_after_fork)


def cache_alias():
    """The alias of the cache that keeps search health, or None when it is not recorded."""
    return app_settings.SEARCH_HEALTH_CACHE


def endpoint_name(request):
    """The short name of the search endpoint ``request`` reached ("text", "composed", ...)."""
    match = getattr(request, "resolver_match", None)
    name = (match.url_name if match is not None else None) or "other"
    return name.removeprefix(SEARCH_URL_PREFIX)


def bin_of(ms):
    """Index of the latency bin of ``ms`` milliseconds (``BOUNDS[i - 1] < ms <= BOUNDS[i]``)."""
    if ms <= SMALLEST_MS:
        return 0
    index = math.ceil(BINS_PER_OCTAVE * math.log2(ms / SMALLEST_MS) - 1e-9)
    return min(index, len(BOUNDS) - 1)


def record(endpoint, status_code, timings, *, now=None):
    """Count one answer of ``endpoint`` with ``status_code``; ``timings`` is ``{phase: ms}`` (Server-Timing).

    Adds to this process's counts only; they reach the cache within ``FLUSH_SECONDS``.
    """
    alias = cache_alias()
    if alias is None:
        return
    endpoint = str(endpoint).replace(":", "_")
    fields = {f"{endpoint}:s:{int(status_code)}": 1}
    if 200 <= status_code < 300:
        for phase, ms in timings.items():
            phase = str(phase).replace(":", "_")
            fields[f"{endpoint}:h:{phase}:{bin_of(ms)}"] = 1
            fields[f"{endpoint}:us:{phase}"] = max(int(ms * 1000), 0)  # the sum, for the phase's mean
    minute = int((time.time() if now is None else now) // 60)
    with _state["lock"]:
        bucket = _state["pending"].setdefault((alias, minute), {})
        for field, n in fields.items():
            bucket[field] = bucket.get(field, 0) + n
        if _state["flusher"] is None:
            _state["flusher"] = threading.Thread(target=_flush_forever, name="p2w-search-health", daemon=True)
            _state["flusher"].start()


def flush():
    """Write the counts this process holds to their caches now; never raises.

    The flusher thread calls it every ``FLUSH_SECONDS``; ``summary`` first, so a process
    reads its own searches.
    """
    with _state["flushing"]:  # a reader waits for a write in progress, or it would miss its counts
        with _state["lock"]:
            pending, _state["pending"] = _state["pending"], {}
        for (alias, minute), fields in sorted(pending.items(), key=lambda item: (str(item[0][0]), item[0][1])):
            if time.monotonic() < _down_until.get(alias, 0.0):
                continue  # dropped: what is kept stays bounded while the cache is away
            try:
                _store(alias).add(minute, fields)
            except Exception as exc:  # noqa: BLE001 - statistics never fail anything
                _down_until[alias] = time.monotonic() + RETRY_AFTER
                logger.warning("search health not recorded (tried again in %g s): %s", RETRY_AFTER, exc)


def _flush_forever():
    while True:
        time.sleep(FLUSH_SECONDS)
        flush()


atexit.register(flush)  # a web process that stops writes its last second


@receiver(got_request_exception)
def _count_server_error(sender, request=None, **kwargs):
    # An exception that escaped a search view is answered 500 by Django, past the view's own recording.
    match = getattr(request, "resolver_match", None)
    if match is not None and match.namespace == "p2w_search" and (match.url_name or "").startswith(SEARCH_URL_PREFIX):
        record(endpoint_name(request), 500, {})


def summary(*, windows=WINDOWS, now=None):
    """Search health of the last minutes: ``{"windows": {minutes: {endpoint: stats}}, "series": [...]}``.

    ``stats`` (and ``"all"``, every endpoint together): ``requests``; answers by kind, ``ok``
    (2xx), ``rejected`` (4xx but 429), ``throttled`` (429), ``unavailable`` (503), ``failed``
    (5xx but 503); ``p50`` and ``p95`` of answered searches in ms (None without one); and
    ``phases``, ``{phase: {"p50", "p95", "mean"}}``. ``series`` has one entry a minute for
    the last ``KEEP_MINUTES``, oldest first: ``{"minute", "requests", "p95"}``.
    """
    flush()
    current = int((time.time() if now is None else now) // 60)
    minutes = list(range(current - KEEP_MINUTES + 1, current + 1))
    alias = cache_alias()
    try:
        buckets = _store(alias).read(minutes) if alias is not None else {}
    except Exception as exc:  # noqa: BLE001 - the admin page shows the rest
        logger.warning("search health not read: %s", exc)
        buckets = {}
    parsed = {minute: _parse(buckets.get(minute) or {}) for minute in minutes}
    result = {"windows": {}, "series": [], "recording": alias is not None}
    for window in windows:
        merged = {}
        for minute in minutes[-window:]:
            for endpoint, counts in parsed[minute].items():
                _merge(merged.setdefault(endpoint, _empty()), counts)
                _merge(merged.setdefault("all", _empty()), counts)
        result["windows"][window] = {endpoint: _stats(counts) for endpoint, counts in sorted(merged.items())}
    for minute in minutes:
        every = _empty()
        for counts in parsed[minute].values():
            _merge(every, counts)
        stats = _stats(every)
        result["series"].append({"minute": minute, "requests": stats["requests"], "p95": stats["p95"]})
    return result


def percentile(histogram, q):
    """The ``q`` quantile (0-1) in ms of a ``{bin: count}`` histogram, interpolated within its bin; None if empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for index in sorted(histogram):
        count = histogram[index]
        if seen + count >= rank:
            upper = BOUNDS[index]
            lower = BOUNDS[index - 1] if index else upper / 2 ** (1 / BINS_PER_OCTAVE)
            fraction = (rank - seen) / count
            return lower * (upper / lower) ** fraction  # the bins are even on a log scale
        seen += count
    return BOUNDS[max(histogram)]


def _empty():
    return {"status": {}, "bins": {}, "sums": {}}


def _merge(into, counts):
    for code, n in counts["status"].items():
        into["status"][code] = into["status"].get(code, 0) + n
    for phase, bins in counts["bins"].items():
        target = into["bins"].setdefault(phase, {})
        for index, n in bins.items():
            target[index] = target.get(index, 0) + n
    for phase, us in counts["sums"].items():
        into["sums"][phase] = into["sums"].get(phase, 0) + us


def _parse(fields):
    """``{endpoint: {"status": {code: n}, "bins": {phase: {bin: n}}, "sums": {phase: us}}}`` of one bucket.

    A field this version cannot read is left out: one of another version of this module (more
    bins: an index past ``BOUNDS`` was an IndexError, a 500 of the index page), or a count that
    is not above 0 (it would make a negative number of searches, or a percentile of nothing).
    """
    endpoints = {}
    for field, value in fields.items():
        parts = field.split(":")
        counts = endpoints.setdefault(parts[0], _empty())
        try:
            n = int(value)
            if n <= 0:
                continue
            if parts[1] == "s":
                counts["status"][int(parts[2])] = n
            elif parts[1] == "h" and 0 <= int(parts[3]) < len(BOUNDS):
                counts["bins"].setdefault(parts[2], {})[int(parts[3])] = n
            elif parts[1] == "us":
                counts["sums"][parts[2]] = n
        except (IndexError, TypeError, ValueError):  # a field of another version of this module
            continue
    return endpoints


def _stats(counts):
    status = counts["status"]

    def answered(test):
        return sum(n for code, n in status.items() if test(code))

    phases = {}
    for phase, bins in counts["bins"].items():
        n = sum(bins.values())
        phases[phase] = {"p50": percentile(bins, 0.5), "p95": percentile(bins, 0.95),
                         "mean": counts["sums"].get(phase, 0) / 1000 / n if n else None}
    total = counts["bins"].get("total", {})
    return {
        "requests": sum(status.values()),
        "ok": answered(lambda code: 200 <= code < 300),
        "rejected": answered(lambda code: 400 <= code < 500 and code != 429),
        "throttled": status.get(429, 0),
        "unavailable": status.get(503, 0),
        "failed": answered(lambda code: code >= 500 and code != 503),
        "p50": percentile(total, 0.5), "p95": percentile(total, 0.95),
        "phases": {phase: phases[phase] for phase in sorted(phases, key=_phase_order)},
    }


def _phase_order(phase):
    order = ["encode", "queue", "sql", "serialize", "total"]
    return (order.index(phase), phase) if phase in order else (len(order), phase)


def _store(alias):
    cache = caches[alias]
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if type(cache).__module__ == "django.core.cache.backends.redis" and client is not None:
        return _RedisStore(cache)
    return _CacheStore(cache)


class _RedisStore:
    """A Redis hash per minute under the cache's key prefix; one pipelined round trip per call."""

    def __init__(self, cache):
        self.cache = cache

    def _key(self, minute):
        return self.cache.make_and_validate_key(f"p2w:search-health:{minute}")

    def add(self, minute, fields):
        key = self._key(minute)
        # Django's RedisCache has no hash commands; its client (a redis-py client on its pool) has.
        pipeline = self.cache._cache.get_client(key, write=True).pipeline(transaction=False)
        for field, n in fields.items():
            pipeline.hincrby(key, field, n)
        pipeline.expire(key, (KEEP_MINUTES + 1) * 60)
        pipeline.execute()

    def read(self, minutes):
        pipeline = self.cache._cache.get_client(None).pipeline(transaction=False)
        for minute in minutes:
            pipeline.hgetall(self._key(minute))
        return {minute: {field.decode(): int(value) for field, value in fields.items()}
                for minute, fields in zip(minutes, pipeline.execute()) if fields}


class _CacheStore:
    """One dict per minute in any Django cache, changed under this process's lock (see the module's note)."""

    def __init__(self, cache):
        self.cache = cache

    @staticmethod
    def _key(minute):
        return f"p2w:search-health:{minute}"

    def add(self, minute, fields):
        key = self._key(minute)
        with _state["store_lock"]:
            bucket = self.cache.get(key) or {}
            for field, n in fields.items():
                bucket[field] = bucket.get(field, 0) + n
            self.cache.set(key, bucket, (KEEP_MINUTES + 1) * 60)

    def read(self, minutes):
        found = self.cache.get_many([self._key(minute) for minute in minutes])
        return {minute: found[self._key(minute)] for minute in minutes if self._key(minute) in found}

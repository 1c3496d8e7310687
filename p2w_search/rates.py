"""How fast the workers embed, and when a model will be complete, from the embedding rows themselves.

A ready embedding row's ``updated_at`` is the moment its batch stored the vector
(``indexing._store_ready``), so the rows a model made ready in the last minutes are its
rate: no counter to keep, and the figure is the same on every web process and in every
command. Failed rows are not counted: they are marked without touching ``updated_at``,
which keeps the time they were queued (and failures are quick and few).

Those times are the database's clock (``now()`` in the batch's UPDATE), so the rate is read
against that clock too: a web host whose clock is behind it saw the last batches in the
future, and counted them over a span that ended before they did (hundreds of images a second).
A row stamped later than that (written by a host whose clock is ahead) is left out: when it
ended is not known.
"""

from datetime import timedelta

from django.db import connection
from django.db.models import Count, Min
from django.db.models.functions import TruncMinute

from p2w_search.models import ImageEmbedding

__all__ = ["RATE_WINDOW", "embedding_rate", "database_now", "seconds_left", "per_minute", "duration_text"]

RATE_WINDOW = 300  # seconds: "the last minutes" of the rate
READY = ImageEmbedding.State.READY


def embedding_rate(model, *, window=RATE_WINDOW, now=None):
    """Images ``model`` embedded per second over the last ``window`` seconds; None before two batches ended.

    A batch's rows share one ``updated_at``, the end of its work: the rows of the first
    batch in the window ended work that began before it, so the rate counts the rows that
    ended after it, over the time since it. The time runs to now, so a rate falls as a
    stalled run goes on, and is 0 once nothing ended in the window.
    """
    now = now or database_now()
    done = ImageEmbedding.objects.filter(model=model, state=READY, updated_at__gte=now - timedelta(seconds=window),
                                         updated_at__lte=now)
    found = done.aggregate(n=Count("id"), first=Min("updated_at"))
    if not found["n"]:
        return 0.0
    after_first = found["n"] - done.filter(updated_at=found["first"]).count()
    span = (now - found["first"]).total_seconds()
    if not after_first or span <= 0:
        return None
    return after_first / span


def database_now():
    """The database's clock now (``clock_timestamp()``: not the transaction's start), the clock of the rows' times."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def seconds_left(counts, rate):
    """Seconds until the images ``counts`` (``serving.model_progress``) has left are done at ``rate``.

    0 when nothing is left; None when something is left and the rate is unknown or 0.
    """
    left = counts["pending"] + counts["missing"]
    if not left:
        return 0.0
    if not rate:
        return None
    return left / rate


def per_minute(*, minutes=60, now=None):
    """``{model_id: [images embedded in each of the last minutes, oldest first]}`` (the current minute last)."""
    now = now or database_now()
    current = now.replace(second=0, microsecond=0)
    start = current - timedelta(minutes=minutes - 1)
    rows = (ImageEmbedding.objects.filter(state=READY, updated_at__gte=start)
            .annotate(minute=TruncMinute("updated_at")).values("model_id", "minute")
            .annotate(n=Count("id")).order_by())
    series = {}
    for row in rows:
        index = int((row["minute"] - start).total_seconds() // 60)
        if 0 <= index < minutes:
            series.setdefault(row["model_id"], [0] * minutes)[index] = row["n"]
    return series


def duration_text(seconds):
    """``seconds`` for a reader: ``"45 s"``, ``"12 min"``, ``"3 h 5 min"``.

    Less than 0 reads as 0: "ago" of a moment that a clock ahead of this one wrote (a worker's
    heartbeat) is now, not "-3600 s".
    """
    seconds = max(round(seconds), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"

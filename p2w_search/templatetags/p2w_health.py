"""Filters of the admin's index page: durations, milliseconds and rates for a reader."""

from numbers import Number

from django import template
from django.utils import timezone

from p2w_search.rates import duration_text

register = template.Library()


@register.filter
def duration(seconds):
    """Seconds as ``"45 s"``, ``"12 min"``, ``"3 h 5 min"``; "-" when unknown."""
    return duration_text(seconds) if isinstance(seconds, Number) else "-"


@register.filter
def ms(value):
    """Milliseconds with three significant digits, or "-" when there is no value (a phase no search had)."""
    return f"{value:.3g} ms" if isinstance(value, Number) else "-"


@register.filter
def per_second(value):
    """A rate in images per second, or "-" while it is unknown."""
    return f"{value:.3g} img/s" if isinstance(value, Number) else "-"


@register.filter
def ago(moment):
    """How long ago ``moment`` (a datetime) was: ``"45 s ago"``; "-" without one."""
    return f"{duration_text((timezone.now() - moment).total_seconds())} ago" if moment else "-"

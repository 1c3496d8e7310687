from django import template
from django.template.defaultfilters import filesizeformat

register = template.Library()


@register.filter(name="bytes")
def bytes_(value):
    """A size in bytes, or "-" when there is none (e.g. an index not built yet)."""
    return "-" if value is None else filesizeformat(value)

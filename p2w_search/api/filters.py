"""Filters on the shop's product fields named in ``P2W_SEARCH["FILTER_FIELDS"]``.

Each field gets the filter a shopper expects of its type: numbers a range
(``price_min``, ``price_max``), booleans ``true``/``false``, relations and text an
exact value (several values separated by commas).
"""

import django_filters
from django.apps import apps
from django.db import models

from p2w_search.conf import P2WImproperlyConfigured, app_settings, product_model_label

__all__ = ["product_filterset"]

_NUMBER_FIELDS = (models.IntegerField, models.DecimalField, models.FloatField)


class _CharInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    pass


class _NumberInFilter(django_filters.BaseInFilter, django_filters.NumberFilter):
    pass


def _filters_for(field):
    name = field.name
    if isinstance(field, models.BooleanField):
        # A typed choice, not BooleanFilter: that one ignores a value it cannot read instead of refusing it.
        return {name: django_filters.TypedChoiceFilter(
            field_name=name, choices=[("true", "true"), ("false", "false")], coerce=lambda value: value == "true"
        )}
    if isinstance(field, models.ForeignKey):
        return {name: _NumberInFilter(field_name=f"{name}_id", lookup_expr="in")}
    if isinstance(field, _NUMBER_FIELDS):
        return {
            f"{name}_min": django_filters.NumberFilter(field_name=name, lookup_expr="gte"),
            f"{name}_max": django_filters.NumberFilter(field_name=name, lookup_expr="lte"),
        }
    return {name: _CharInFilter(field_name=name, lookup_expr="in")}


_cache = {}


def product_filterset():
    """Return the FilterSet class for the product model and the configured fields."""
    label = product_model_label()
    names = tuple(app_settings.FILTER_FIELDS)
    key = (label, names)
    if key not in _cache:
        model = apps.get_model(label)
        declared = {}
        for name in names:
            try:
                field = model._meta.get_field(name)
            except Exception:
                raise P2WImproperlyConfigured(
                    f"P2W_SEARCH['FILTER_FIELDS'] names {name!r}, which {label} does not have."
                ) from None
            declared.update(_filters_for(field))
        meta = type("Meta", (), {"model": model, "fields": []})
        _cache[key] = type("ProductFilterSet", (django_filters.FilterSet,), {**declared, "Meta": meta})
    return _cache[key]

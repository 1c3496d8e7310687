"""Filters on the shop's product fields named in ``P2W_SEARCH["FILTER_FIELDS"]``.

Each field gets the filter a shopper expects of its type: numbers a range
(``price_min``, ``price_max``), booleans ``true``/``false``, relations and text an
exact value (several values separated by commas, or the parameter repeated). A value
the database could not hold (``price_max=1e-200000``) and a range bound given twice are
refused with a 400 that names the parameter, like any other bad value.
"""

from decimal import Decimal

import django_filters
from django import forms
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.utils import ErrorDict, ErrorList

from p2w_search.conf import P2WImproperlyConfigured, app_settings, product_model_label

__all__ = ["product_filterset", "ProductFilterSet"]

_NUMBER_FIELDS = (models.IntegerField, models.DecimalField, models.FloatField)
# Numbers a filter takes: any price or quantity a shop has, never one that overflows PostgreSQL's numeric.
_LARGEST = Decimal(10) ** 15
_SMALLEST_EXPONENT = -20


class BoundedNumberField(forms.DecimalField):
    """A decimal between -10^15 and 10^15 with at most 20 decimal places."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and value.is_finite():
            if abs(value) >= _LARGEST or value.as_tuple().exponent < _SMALLEST_EXPONENT:
                raise ValidationError("Enter a number between -10^15 and 10^15 with at most 20 decimal places.",
                                      code="out_of_range")
        return value


class _NumberFilter(django_filters.NumberFilter):
    field_class = BoundedNumberField


class _CharInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    pass


class _NumberInFilter(django_filters.BaseInFilter, _NumberFilter):
    pass


class ProductFilterSet(django_filters.FilterSet):
    """A FilterSet that takes a list filter's parameter repeated, and refuses any other parameter given twice."""

    def __init__(self, data=None, *args, **kwargs):
        self.repeated = {}
        if data is not None and hasattr(data, "getlist"):
            data = data.copy()
            for name, declared in self.base_filters.items():
                values = data.getlist(name)
                if len(values) > 1:
                    if isinstance(declared, django_filters.BaseInFilter):
                        data.setlist(name, [",".join(values)])  # category=mug&category=dress: both
                    else:
                        self.repeated[name] = len(values)
        super().__init__(data, *args, **kwargs)

    def is_valid(self):
        return super().is_valid() and not self.repeated

    @property
    def errors(self):
        errors = ErrorDict(super().errors)
        for name, times in self.repeated.items():
            errors[name] = ErrorList([ValidationError(f"Give {name} once; it was given {times} times.",
                                                      code="repeated")])
        return errors


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
            f"{name}_min": _NumberFilter(field_name=name, lookup_expr="gte"),
            f"{name}_max": _NumberFilter(field_name=name, lookup_expr="lte"),
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
        _cache[key] = type("ProductFilterSet", (ProductFilterSet,), {**declared, "Meta": meta})
    return _cache[key]

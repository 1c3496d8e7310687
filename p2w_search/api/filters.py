"""Filters of search requests, on the shop's product data, configured in ``P2W_SEARCH["FILTER_FIELDS"]``.

An entry is a product field's name (``"category"``), or ``{parameter: spec}`` where the
spec is a ``__`` path across relations (``"stockrecords__price"``), a list of paths of
which any may match (variants: ``["stockrecords__price", "children__stockrecords__price"]``),
or a dict ``{"path": ..., "descendants": True}`` for a category tree (a category finds the
products of its subcategories too; the related model needs ``get_descendants()``, as
django-treebeard's and django-mptt's nodes have). ``P2W_SEARCH["FILTERSET_CLASS"]`` replaces
all of this with a FilterSet of the shop's own.

Each parameter gets the filter a shopper expects of the type at the end of its path:
numbers a range (``price_min``, ``price_max``), booleans ``true``/``false``, relations the
related objects' keys (typed as their primary key: integers, UUIDs or text), other fields
exact values; several values are separated by commas or given by repeating the parameter.
A value the database could not hold (``price_max=1e-200000``) and a range bound given
twice are refused with a 400 that names the parameter.
"""

from decimal import Decimal

import django_filters
from django import forms
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q
from django.forms.utils import ErrorDict, ErrorList
from django.utils.module_loading import import_string

from p2w_search.conf import P2WImproperlyConfigured, app_settings, product_model_label

__all__ = ["product_filterset", "ProductFilterSet", "filter_specs", "resolve_path"]

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


class _KeyNumberField(forms.IntegerField):
    default_error_messages = {"invalid": "Enter a number. An id is a whole number, e.g. 12."}


class _IntegerInFilter(django_filters.BaseInFilter, django_filters.NumberFilter):
    # Integer keys take whole numbers only: 1.5 was read as a decimal, and the database adapter made it key 1.
    field_class = _KeyNumberField


class _UUIDInFilter(django_filters.BaseInFilter, django_filters.UUIDFilter):
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


def filter_specs():
    """``[(parameter, [paths], descendants)]`` of ``FILTER_FIELDS``, or P2WImproperlyConfigured naming the entry."""
    specs = []
    for entry in app_settings.FILTER_FIELDS:
        items = [(entry, entry)] if isinstance(entry, str) else list(entry.items()) if isinstance(entry, dict) else None
        if items is None:
            raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS'] entry {entry!r} is neither a field name nor "
                                          "a {parameter: path} mapping.")
        for name, spec in items:
            descendants = False
            if isinstance(spec, dict):
                descendants, spec = bool(spec.get("descendants")), spec.get("path", name)
            paths = [spec] if isinstance(spec, str) else list(spec)
            specs.append((name, paths, descendants))
    return specs


def resolve_path(model, path):
    """The model field at the end of ``path`` (``stockrecords__price``), or P2WImproperlyConfigured."""
    field = None
    for part in path.split("__"):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            if part == path:
                raise P2WImproperlyConfigured(
                    f"P2W_SEARCH['FILTER_FIELDS'] names {path!r}, which {model._meta.label} does not have.") from None
            raise P2WImproperlyConfigured(
                f"P2W_SEARCH['FILTER_FIELDS'] names {path!r}, but {model._meta.label} has no field {part!r}."
            ) from None
        if field.is_relation and part != path.split("__")[-1]:
            model = field.related_model
    return field


def _in_filter_for_key(key_field):
    if isinstance(key_field, models.UUIDField):
        return _UUIDInFilter
    if isinstance(key_field, (models.IntegerField, models.AutoField)):
        return _IntegerInFilter
    return _CharInFilter


def _kind(field):
    if isinstance(field, models.BooleanField):
        return "boolean"
    if field.is_relation:
        return "relation"
    return "number" if isinstance(field, _NUMBER_FIELDS) else "text"


def _filters_for(name, paths, descendants, model):
    fields = [resolve_path(model, path) for path in paths]
    field = fields[0]
    if len({_kind(f) for f in fields}) > 1:
        raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: the paths of {name!r} end in fields of "
                                      f"different kinds ({', '.join(type(f).__name__ for f in fields)}).")

    def any_path(lookup, transform=lambda value: value):
        def method(queryset, _name, value):
            if value in (None, "", []):
                return queryset
            value = transform(value)
            condition = Q()
            for path in paths:
                condition |= Q(**{f"{path}__{lookup}": value})
            return queryset.filter(condition)
        return method

    if isinstance(field, models.BooleanField):
        # A typed choice, not BooleanFilter: that one ignores a value it cannot read instead of refusing it.
        return {name: django_filters.TypedChoiceFilter(
            choices=[("true", "true"), ("false", "false")], coerce=lambda value: value == "true",
            method=any_path("exact"))}
    if field.is_relation:
        related = field.related_model
        expand = (lambda keys: _with_descendants(related, keys)) if descendants else (lambda keys: keys)
        return {name: _in_filter_for_key(related._meta.pk)(method=any_path("in", expand))}
    if descendants:
        raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: {name!r} asks for descendants, but its path "
                                      "does not end in a relation to a tree of categories.")
    if isinstance(field, _NUMBER_FIELDS):
        return {f"{name}_min": _NumberFilter(method=any_path("gte")),
                f"{name}_max": _NumberFilter(method=any_path("lte"))}
    return {name: _CharInFilter(method=any_path("in"))}


def _with_descendants(model, keys):
    """``keys`` and the keys of every descendant of those nodes (treebeard's or mptt's ``get_descendants``)."""
    nodes = list(model._default_manager.filter(pk__in=keys))
    found = set(keys)
    for node in nodes:
        found.update(node.get_descendants().values_list("pk", flat=True))
    return list(found)


_cache = {}


def product_filterset():
    """Return the FilterSet class of search requests: the shop's own, or one built from ``FILTER_FIELDS``."""
    if app_settings.FILTERSET_CLASS:
        return import_string(app_settings.FILTERSET_CLASS)
    from django.apps import apps

    label = product_model_label()
    specs = filter_specs()
    key = (label, repr(specs))
    if key not in _cache:
        model = apps.get_model(label)
        declared = {}
        for name, paths, descendants in specs:
            declared.update(_filters_for(name, paths, descendants, model))
        meta = type("Meta", (), {"model": model, "fields": []})
        _cache[key] = type("ProductFilterSet", (ProductFilterSet,), {**declared, "Meta": meta})
    return _cache[key]

"""Filters of search requests, on the shop's product data, configured in ``P2W_SEARCH["FILTER_FIELDS"]``.

An entry is a product field's name (``"category"``), or ``{parameter: spec}`` where the
spec is a ``__`` path across relations (``"stockrecords__price"``), a list of paths of
which any may match (variants: ``["stockrecords__price", "children__stockrecords__price"]``),
or a dict ``{"path": ..., "descendants": True}`` for a category tree (a category finds the
products of its subcategories too; the related model needs ``get_descendants()``, as
django-treebeard's and django-mptt's nodes have). A dict's ``"where"`` holds fixed lookups
from the product (``{"variants__channel_listings__channel__slug": "default-channel"}``) that
the row the path reaches must meet too: a price is the shop's channel's, not any channel's;
with several paths each has its own (``[{"path": ..., "where": ...}, ...]``).
``P2W_SEARCH["FILTERSET_CLASS"]`` replaces all of this with a FilterSet of the shop's own.

Each parameter gets the filter a shopper expects of the type at the end of its path:
numbers a range (``price_min``, ``price_max``), booleans ``true``/``false``, relations the
related objects' keys (typed as their primary key: integers, UUIDs or text), other fields
exact values; several values are separated by commas or given by repeating the parameter.
Conditions on one multi-valued relation hold for one related row (``together``): a price
range and a stock bound through ``stockrecords__`` are met by one stock record, and that record
meets their paths' ``where``.
A value the database could not hold (``price_max=1e-200000``) and a range bound given
twice are refused with a 400 that names the parameter.

The browsable API shows the filters as a form (``FilterForm``), a GET to the same page: it
sends again, hidden, the page's other parameters that the view reads (``kept_parameters``:
``q``, ``k``, the page size ...), so that narrowing a search keeps it. A search that takes only
a POST (a photo; a product and words) shows no such form (``SearchFilterBackend``): a GET there
is a 405. Its filters go in the POST's query string.
"""

import re
from decimal import Decimal

import django_filters
from django import forms
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q
from django.forms.utils import ErrorDict, ErrorList
from django.utils.module_loading import import_string
from django.utils.text import capfirst
from django_filters.fields import BaseCSVField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.settings import api_settings

from p2w_search.api.parameters import repeated_parameters, whole_number
from p2w_search.conf import P2WImproperlyConfigured, app_settings, lookups_problem, product_model_label

__all__ = ["product_filterset", "ProductFilterSet", "FilterForm", "SearchFilterBackend", "kept_parameters",
           "filter_specs", "resolve_path", "resolve_where", "matching", "together"]

_NUMBER_FIELDS = (models.IntegerField, models.DecimalField, models.FloatField)
# Numbers a filter takes: any price or quantity a shop has, never one that overflows PostgreSQL's numeric.
_LARGEST = Decimal(10) ** 15
_SMALLEST_EXPONENT = -20


class BoundedNumberField(forms.DecimalField):
    """A decimal between -10^15 and 10^15 with at most 20 decimal places, written in ASCII digits.

    Python's Decimal, which Django's field uses, also reads "1_0" as 10 and other scripts' digits
    ("١٠") as theirs: a bound the shopper did not write, and results for it without a word.
    """

    plain = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")

    def to_python(self, value):
        if isinstance(value, str) and value not in self.empty_values and not self.plain.fullmatch(value):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        value = super().to_python(value)
        if value is not None and value.is_finite():
            if abs(value) >= _LARGEST or value.as_tuple().exponent < _SMALLEST_EXPONENT:
                raise ValidationError("Enter a number between -10^15 and 10^15 with at most 20 decimal places.",
                                      code="out_of_range")
        return value


class _NumberFilter(django_filters.NumberFilter):
    field_class = BoundedNumberField


class _ValuesField(BaseCSVField):
    """Comma-separated values, at least one: "," or " , " holds none (an empty IN list was a 500 for ids)."""

    def __init__(self, *args, **kwargs):
        widget = kwargs.get("widget") or self.widget
        if issubclass(widget if isinstance(widget, type) else type(widget), forms.NumberInput):
            kwargs["widget"] = forms.TextInput  # ids, "12,15": a browser's number input takes one number, no comma
        super().__init__(*args, **kwargs)

    def clean(self, value):
        values = super().clean(value)
        if values and all(item in self.empty_values for item in values):
            raise ValidationError("Enter one or more values separated by commas.", code="no_values")
        return values


class _InFilter(django_filters.BaseInFilter):
    base_field_class = _ValuesField


class _CharInFilter(_InFilter, django_filters.CharFilter):
    pass


class _KeyNumberField(forms.IntegerField):
    """An integer key, read by ``whole_number`` (Django's field read "1.0" as 1, and int() "1_0" as 10)."""

    default_error_messages = {"invalid": "Enter a number. An id is a whole number, e.g. 12."}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return whole_number(value, signed=True)  # a key no row has, -5, finds nothing
        except ValueError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class _IntegerInFilter(_InFilter, django_filters.NumberFilter):
    # Integer keys take whole numbers only: 1.5 was read as a decimal, and the database adapter made it key 1.
    field_class = _KeyNumberField


class _UUIDInFilter(_InFilter, django_filters.UUIDFilter):
    pass


def kept_parameters(request, *, filters):
    """``[(name, value)]`` of the request's query parameters that its filter form sends again, in the link's order.

    Those the view reads besides ``filters`` (the form's own fields): its ``params_class``'s (``q``,
    ``k``, ``exclude``, ``product`` ...), its page size and DRF's ``format``. Not the page: narrowed
    results start at the first. Not a parameter the view does not read (a shop's own view may let one
    through): sent again, it would look applied.
    """
    if request is None:
        return []
    view = (getattr(request, "parser_context", None) or {}).get("view")  # DRF's request knows its view
    params_class = getattr(view, "params_class", None)
    known = {*(params_class().fields if params_class else ()), api_settings.URL_FORMAT_OVERRIDE,
             getattr(getattr(view, "paginator", None), "page_size_query_param", None)} - set(filters)
    return [(name, value) for name, values in request.GET.lists() if name in known for value in values]


class FilterForm(forms.Form):
    """The filters' form as the browsable API shows it: a GET to the same page, which sends only what the form holds.

    So it holds, hidden after its fields, the page's other parameters (``kept_parameters``):
    narrowing ``?q=red`` to a category dropped the words (a 400, "q: This field is required.").
    """

    template_name_p = "rest_framework/p2w_search/filter_fields.html"  # what the browsable API renders (as_p)
    request = None  # the request of the page that shows the form: ProductFilterSet.form sets it

    def get_context(self):
        return {**super().get_context(), "kept": kept_parameters(self.request, filters=self.fields)}


class SearchFilterBackend(DjangoFilterBackend):
    """django-filter's backend, whose form the browsable API shows only on a view that answers a GET: the form is a
    GET to the same page, so on a search by photo or by product and words it was a 405 "Method GET not allowed"."""

    def to_html(self, request, queryset, view):
        if "GET" not in view.allowed_methods:
            return None
        return super().to_html(request, queryset, view)


class ProductFilterSet(django_filters.FilterSet):
    """A FilterSet that takes a list filter's parameter repeated, and refuses any other parameter given twice.

    Its form (``FilterForm``) keeps the page's other parameters; a subclass keeps it with ``class
    Meta(ProductFilterSet.Meta)``.
    """

    class Meta:
        form = FilterForm

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

    @property
    def form(self):
        form = super().form
        form.request = self.request
        return form

    def is_valid(self):
        return super().is_valid() and not self.repeated and not self._crossed()

    def _crossed(self):
        """``{name_max: reason}`` for each range whose upper bound is below its lower one (a 400, not no results)."""
        data = getattr(self.form, "cleaned_data", {})
        crossed = {}
        for name, declared in self.filters.items():
            low_name = name[:-len("_max")] + "_min"
            if not (name.endswith("_max") and isinstance(declared, _NumberFilter)
                    and isinstance(self.filters.get(low_name), _NumberFilter)):
                continue
            low, high = data.get(low_name), data.get(name)
            if low is not None and high is not None and low > high:
                crossed[name] = f"Ensure this value is greater than or equal to {low_name} ({low})."
        return crossed

    def filter_queryset(self, queryset):
        """Apply the filters: those of ``FILTER_FIELDS`` together in one ``filter()`` call (``matching``)."""
        conditions = []
        for name, value in self.form.cleaned_data.items():
            declared = self.filters[name]
            if isinstance(declared, _OnPaths):
                condition = declared.condition(value)
                if condition is not None:
                    conditions.append(condition)
            else:
                queryset = declared.filter(queryset, value)
        return matching(queryset, conditions) if conditions else queryset

    @property
    def errors(self):
        errors = ErrorDict(super().errors)
        for name, [reason] in repeated_parameters(self.data, self.repeated).items():
            errors[name] = ErrorList([ValidationError(reason, code="repeated")])
        for name, reason in self._crossed().items():
            errors[name] = ErrorList([ValidationError(reason, code="crossed")])
        return errors


def filter_specs():
    """``[(parameter, [paths], descendants, [wheres])]`` of ``FILTER_FIELDS`` (a where for each path, ``{}`` where
    it has none), or P2WImproperlyConfigured naming the entry."""
    specs = []
    for entry in app_settings.FILTER_FIELDS:
        items = [(entry, entry)] if isinstance(entry, str) else list(entry.items()) if isinstance(entry, dict) else None
        if items is None:
            raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS'] entry {entry!r} is neither a field name nor "
                                          "a {parameter: path} mapping.")
        for name, spec in items:
            descendants = isinstance(spec, dict) and bool(spec.get("descendants"))
            pairs = _paths_of(name, spec, _SPEC_KEYS)
            specs.append((name, [path for path, _ in pairs], descendants, [where for _, where in pairs]))
    return specs


_SPEC_KEYS = ("path", "descendants", "where")


def _paths_of(name, spec, keys):
    """``[(path, where)]`` of one parameter's spec: a path, a dict of ``keys``, or a list of paths and
    ``{"path", "where"}`` dicts. A typo in a key (``"wehre"``) would drop its lookups without a word: refused."""
    if isinstance(spec, dict):
        unknown = sorted(map(repr, set(spec) - set(keys)))
        if unknown:
            raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: the spec of {name!r} has "
                                          f"{', '.join(unknown)}, which is no key of a spec (its keys: "
                                          f"{', '.join(keys)}).")
        path, where = spec.get("path", name), spec.get("where", {})
        if not isinstance(where, dict):
            raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: the where of {name!r} must be a dict of "
                                          f"field lookups, e.g. {{'variants__channel_listings__channel__slug': "
                                          f"'default-channel'}}, not {where!r}.")
        if isinstance(path, str):
            return [(path, where)]
        if where:
            raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: {name!r} has several paths and one where; "
                                          "give each path its own: [{'path': ..., 'where': {...}}, ...].")
        spec = path
    if isinstance(spec, str):
        return [(spec, {})]
    if isinstance(spec, (list, tuple)) and spec:
        return [pair for item in spec for pair in _paths_of(name, item, ("path", "where"))]
    raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: the path of {name!r} must be a '__' path, a list "
                                  f"of them or a dict with 'path', not {spec!r}.")


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


def resolve_where(model, name, where):
    """Check that ``model`` can take the lookups ``where`` of parameter ``name``, or P2WImproperlyConfigured."""
    reason = lookups_problem(model, where)
    if reason:
        raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: the where of {name!r}, {where!r}, cannot filter "
                                      f"{model._meta.label}: {reason}")


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


def _filters_for(name, paths, descendants, wheres, model):
    fields = [resolve_path(model, path) for path in paths]
    for where in wheres:
        resolve_where(model, name, where)
    rows = {"paths": paths, "wheres": wheres}
    field = fields[0]
    if len({_kind(f) for f in fields}) > 1:
        raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: the paths of {name!r} end in fields of "
                                      f"different kinds ({', '.join(type(f).__name__ for f in fields)}).")

    if isinstance(field, models.BooleanField):
        # A typed choice, not BooleanFilter: that one ignores a value it cannot read instead of refusing it. Its
        # blank choice is the browsable API form's "either": without it, the form always sent the first one.
        return {name: _on_paths(django_filters.TypedChoiceFilter)(
            **rows, lookup="exact", choices=[("", "any"), ("true", "true"), ("false", "false")],
            coerce=lambda value: value == "true")}
    if field.is_relation:
        related = field.related_model
        expand = (lambda keys: _with_descendants(related, keys)) if descendants else None
        return {name: _on_paths(_in_filter_for_key(related._meta.pk))(**rows, lookup="in", transform=expand)}
    if descendants:
        raise P2WImproperlyConfigured(f"P2W_SEARCH['FILTER_FIELDS']: {name!r} asks for descendants, but its path "
                                      "does not end in a relation to a tree of categories.")
    if isinstance(field, _NUMBER_FIELDS):
        # Labelled here: django-filter cannot name a filter of several paths ("[invalid name]" on the form).
        return {f"{name}_min": _on_paths(_NumberFilter)(**rows, lookup="gte", label=f"{capfirst(name)} at least"),
                f"{name}_max": _on_paths(_NumberFilter)(**rows, lookup="lte", label=f"{capfirst(name)} at most")}
    return {name: _on_paths(_CharInFilter)(**rows, lookup="in")}


class _OnPaths:
    """A filter of ``FILTER_FIELDS``: ``lookup`` on any of ``paths`` (each with its ``where``), applied by
    ProductFilterSet with the others."""

    def __init__(self, *args, paths, wheres, lookup, transform=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.paths, self.wheres, self.lookup, self.transform = tuple(paths), tuple(wheres), lookup, transform

    def condition(self, value):
        """``(paths, lookup, value, wheres)``, or None when the request leaves this filter out."""
        if value in (None, "", []):
            return None
        return self.paths, self.lookup, self.transform(value) if self.transform else value, self.wheres

    def filter(self, queryset, value):  # alone (a shop's FilterSet calling it): its own filter() call
        condition = self.condition(value)
        return queryset if condition is None else matching(queryset, [condition])


_path_filters = {}


def _on_paths(filter_class):
    if filter_class not in _path_filters:
        _path_filters[filter_class] = type(f"OnPaths{filter_class.__name__}", (_OnPaths, filter_class), {})
    return _path_filters[filter_class]


def matching(queryset, conditions):
    """The products of ``queryset`` that meet ``conditions`` (``together``), each once: in one ``filter()`` call
    across a multi-valued relation a product comes once per matching row (two variants in the price range), so
    such a filter goes in a subquery of keys. Filters on the product's own row stay a plain ``filter()``."""
    model, found = queryset.model, together(conditions)
    lookups = [path for paths, _, _, wheres in conditions for path in (*paths, *(key for where in wheres
                                                                                 for key in where))]
    if not any(_through_many(model, lookup) for lookup in lookups):
        return queryset.filter(found)
    return queryset.filter(pk__in=model._base_manager.filter(found).values("pk"))


def _through_many(model, lookup):
    """Whether ``lookup`` (``variants__listings__price``, ``categories``) crosses a relation of many rows."""
    for part in lookup.split("__"):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False  # a lookup or transform (``gte``, ``year``): the fields end here
        if field.many_to_many or field.one_to_many:
            return True
        if not field.is_relation:
            return False
        model = field.related_model
    return False


def together(conditions):
    """One Q for ``conditions`` (``(paths, lookup, value, wheres)``), where those on one related row hold for one row.

    A product has many stock records (and its variants theirs): ``price_min=10&price_max=20``
    means one record priced 10 to 20, not one at 5 and another at 30, and a price with a stock
    bound means both of one record. Conditions whose paths run through the same relations
    (the paths without their last field, in order) form a group: the i-th paths of its
    conditions must hold together, with the i-th ``where`` of each (the record is the shop's
    channel's), and any i may (the product's own records, or its variants'). Groups must all
    hold. Passed to one ``filter()`` call, where Django joins each relation once, this is what
    Django's "conditions in one filter() call apply to the same related object" gives a
    hand-written query; so two parameters through one relation share its row, and wheres that
    differ there match nothing together.
    """
    groups = {}
    for paths, lookup, value, wheres in conditions:
        key = tuple(path.rpartition("__")[0] for path in paths)
        groups.setdefault(key, []).append((paths, lookup, value, wheres))
    combined = Q()
    for members in groups.values():
        alternatives = Q()
        for i in range(len(members[0][0])):
            rows = []
            for *_, wheres in members:
                if wheres[i] and wheres[i] not in rows:
                    rows.append(wheres[i])
            alternatives |= Q(*(Q(**{f"{paths[i]}__{lookup}": value}) for paths, lookup, value, _ in members),
                              *(Q(**where) for where in rows))
        combined &= alternatives
    return combined


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
        for name, paths, descendants, wheres in specs:
            declared.update(_filters_for(name, paths, descendants, wheres, model))
        meta = type("Meta", (ProductFilterSet.Meta,), {"model": model, "fields": []})
        _cache[key] = type("ProductFilterSet", (ProductFilterSet,), {**declared, "Meta": meta})
    return _cache[key]

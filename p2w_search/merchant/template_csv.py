"""The template CSV a merchant downloads, and the explanation of its columns.

Both come from the shop's import serializer (``P2W_SEARCH["IMPORT_SERIALIZER"]``): its
fields are the columns, their types, limits, defaults and ``help_text`` explain them, and
its optional ``example_row()`` is the example. The CSV is a header and one example row,
nothing else (a comment line would be read as a product); the explanations are on the page.
"""

import csv
import io
from dataclasses import dataclass

from rest_framework import fields as drf

from p2w_search.uploads.importer import import_serializer
from p2w_search.uploads.manifest import IMAGE_SEPARATOR

__all__ = ["Column", "columns", "example_row", "template_csv"]


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    default: str | None  # as written in a cell; None when there is none
    kind: str  # what a cell holds, in words
    help: str


def columns(serializer_class=None):
    """The manifest's columns in the serializer's order, each explained."""
    serializer = (serializer_class or import_serializer())()
    return [Column(name=name, required=field.required, default=_default(field), kind=_kind(name, field),
                   help=str(field.help_text or "")) for name, field in serializer.fields.items()
            if not field.read_only]


def example_row(serializer_class=None):
    """The example row (column -> cell): the serializer's ``example_row()``, or one made from the field types."""
    serializer_class = serializer_class or import_serializer()
    example = getattr(serializer_class, "example_row", None)
    if example is not None:
        return {name: str(value) for name, value in example().items()}
    return {column.name: _example(column.name, field) for column, field in
            zip(columns(serializer_class), serializer_class().fields.values())}


def template_csv(serializer_class=None):
    """The text of the template: the header and one example row."""
    names = [column.name for column in columns(serializer_class)]
    example = example_row(serializer_class)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    writer.writerow([example.get(name, "") for name in names])
    return buffer.getvalue()


def _default(field):
    if field.default is drf.empty:
        return None
    value = field.default() if callable(field.default) else field.default
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else None


def _kind(name, field):
    if isinstance(field, drf.ListField):
        return f"one or more names separated by {IMAGE_SEPARATOR!r}"
    if isinstance(field, drf.BooleanField):
        return "true or false"
    if isinstance(field, drf.DecimalField):
        bound = f", at least {field.min_value}" if field.min_value is not None else ""
        return f"a number with at most {field.decimal_places} decimals{bound}"
    if isinstance(field, drf.IntegerField):
        return "a whole number"
    if isinstance(field, drf.ChoiceField):
        return "one of " + ", ".join(str(choice) for choice in field.choices)
    if isinstance(field, drf.CharField) and field.max_length:
        return f"text, at most {field.max_length} characters"
    return "text"


def _example(name, field):
    if isinstance(field, drf.ListField):
        return f"{name}-1.jpg"
    if isinstance(field, drf.BooleanField):
        return "true"
    if isinstance(field, (drf.DecimalField, drf.IntegerField)):
        return "1"
    if isinstance(field, drf.ChoiceField):
        return str(next(iter(field.choices), ""))
    return f"example {name}"


"""A manifest's rows: what a row names, and what the import and the upload check reject without the database.

The row serializer is the shop's (``import_serializer``; its contract is in ``importer``'s
docstring). Here: the columns a manifest may have, the SKU a row names (``row_sku``) and what a
full sync leaves out (``unnamed``), the file read as a whole (``check_manifest``, the upload's
and the merchant pages' check) with the rows it will reject (``RejectedRows``), and the import's
own first pass (``scan_skus``) and each row's cells (``check_row``). A message says the same
words in the check and in the import: each is written once, here.
"""

import re
from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.module_loading import import_string
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty, get_error_detail

from p2w_search.conf import P2WImproperlyConfigured, app_settings
from p2w_search.uploads.manifest import (
    ERROR_COLUMN,
    ManifestError,
    manifest_format,
    raw_sku,
    read_manifest,
    seen_sku,
    sku_key,
    sku_problem,
)

__all__ = [
    "import_serializer", "known_columns", "row_sku", "unnamed", "check_manifest", "RejectedRows", "ROWS_SHOWN",
    "looks_scientific", "scan_skus", "check_row",
]

# Names a message lists before it says how many more there are.
NAMES_SHOWN = 5
# Row numbers a duplicate SKU's reason lists.
DUPLICATE_ROWS_SHOWN = 10
# Rows the upload check lists of those the import will reject (it counts them all).
ROWS_SHOWN = 5
# A number as a spreadsheet shows it in scientific notation, and saves it in a CSV file: Excel's General format
# writes 123456789012 as 1.23457E+11 (1,23457E+11 where the decimal separator is a comma), one digit before it and
# a signed exponent. The digits it dropped are lost.
SCIENTIFIC = re.compile(r"-?[1-9](?:[.,][0-9]+)?[Ee][+-][0-9]+")


def looks_scientific(sku):
    """Whether ``sku`` (a row's SKU as stored) reads as a number a spreadsheet wrote in scientific notation.

    Only a warning's reason: a SKU may be written so on purpose.
    """
    return isinstance(sku, str) and SCIENTIFIC.fullmatch(sku) is not None


def import_serializer():
    """Return the shop's serializer of one manifest row (``P2W_SEARCH["IMPORT_SERIALIZER"]``)."""
    path = app_settings.IMPORT_SERIALIZER
    if not path:
        raise P2WImproperlyConfigured("Set P2W_SEARCH['IMPORT_SERIALIZER'] to the serializer of one catalog row.")
    return import_string(path)


def known_columns(serializer_class=None):
    """The columns a manifest may have: the row serializer's fields (and the rejected-rows file's error column)."""
    return set((serializer_class or import_serializer())().fields) | {ERROR_COLUMN}


def row_sku(row, columns, sku_field):
    """The SKU a row names as the row serializer's ``sku_field`` stores it, whether or not the row is valid.

    None when it names none. Duplicates are found, and a full sync spares SKUs, by this
    value's ``sku_key``: a JSON Lines ``1.5`` and ``"1.5"`` are one product once stored, and so
    are ``café`` composed and decomposed.
    """
    value = raw_sku(row, columns)
    if value is None:
        return None
    try:
        sku = sku_field.to_internal_value(value)
    except ValidationError:  # not a value the field takes (a list, say): the row's own error says so
        return None
    return None if sku == "" else sku


def shown_rows(numbers):
    """The row numbers a reason names for a SKU on several rows, the first ``DUPLICATE_ROWS_SHOWN``: ``2, 4``."""
    return ", ".join(str(n) for n in numbers[:DUPLICATE_ROWS_SHOWN])


def unnamed(listed, named):
    """The SKUs of ``listed`` (as the shop stores them) that no key of ``named`` (``sku_key``s) reads as, sorted.

    What a full sync of a manifest that names ``named`` unlists of the listed products; the
    import and the merchant pages' count both ask here. A key is also read as a reader sees it
    (``seen_sku``): a row whose SKU ``A<ZERO WIDTH SPACE>1`` or ``ＡＢ１`` is refused still names the listed
    ``A1`` or ``AB1``, plainly to the merchant, so the sync spares it as it spares any rejected row's SKU. And
    the other way: a listed SKU is also read as seen, so a row ``A-1`` refused beside the listed Cyrillic ``А-1``
    (``look_alike``) spares that product, which it plainly names.
    """
    seen = {plain for key in named if (plain := seen_sku(key)) != key}  # most keys read as written: a small set
    return sorted(sku for sku in listed if (key := sku_key(sku)) not in named and key not in seen
                  and (looks := seen_sku(key)) not in named and looks not in seen)


def _names(names):
    """``'a', 'b', 'c', 'd', 'e' and 7 more``: a bounded list of names for a message."""
    shown = ", ".join(repr(name if len(name) <= 60 else name[:60] + "…") for name in names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def check_manifest(upload, *, columns_known, skus=None, rejected=None):
    """Read a whole manifest once (streamed) and raise ManifestError for what makes it unusable as a file.

    Here: the format, the size, the text encoding, the header (a column given twice, without a
    name, or unknown), quotes that never close and the row limit. With ``skus`` (a set), the
    key of the SKU each row names (``sku_key(row_sku(...))``) is added to it on the same read:
    the merchant pages count a full sync from them (``unnamed``), where reading a 50 MB manifest
    a second time doubled the cost of each check. With ``rejected`` (a RejectedRows), the rows
    the import will reject without the database are counted into it on the same read, so the
    merchant learns of them before sending the images; the other row-level problems (a price,
    an image) are the import's to report.
    """
    manifest_format(upload.name)
    if upload.size > app_settings.IMPORT_MAX_MANIFEST_BYTES:
        raise ManifestError(f"it is larger than {app_settings.IMPORT_MAX_MANIFEST_BYTES} bytes")
    columns, rows = read_manifest(upload, upload.name, max_rows=int(app_settings.IMPORT_MAX_ROWS))
    if skus is None and rejected is None:
        count = sum(1 for _ in rows)
    else:
        sku_field, count = import_serializer()().fields["sku"], 0
        for row in rows:
            count += 1
            sku = row_sku(row, columns, sku_field)
            key = None if sku is None else sku_key(sku)
            if skus is not None and key is not None:
                skus.add(key)
            if rejected is not None:
                rejected.add(row, sku, key, sku_field=sku_field, known=columns_known)
    upload.seek(0)
    if columns is not None:
        unknown = [name for name in columns if name not in columns_known]
        if unknown:
            raise ManifestError(f"unknown column{'s' if len(unknown) > 1 else ''} {_names(unknown)}; the columns "
                                f"are {', '.join(sorted(columns_known))}")
        if "sku" not in columns:
            raise ManifestError("the header has no 'sku' column")
    if not count:
        raise ManifestError("it has no rows")


def _unknown_fields(row, known):
    """The problem of a row that gives fields the row serializer does not have (a JSON Lines key), or None."""
    unknown = row.values.keys() - known
    return {"field": None, "reason": f"unknown fields: {_names(sorted(unknown))}"} if unknown else None


def _duplicate_reason(sku, key, numbers, *, mixed):
    """Why a row whose SKU ``sku`` (``key``: its ``sku_key``) is on the rows ``numbers`` is rejected.

    ``mixed``: the rows write it in more than one Unicode form; repr shows both forms alike, so the reason says so.
    """
    shown = shown_rows(numbers)
    if mixed:
        return (f"sku {key!r} is on rows {shown}, written in other Unicode code points on some of them "
                "(they read the same); give each product once")
    return f"sku {sku!r} is on rows {shown}; give each product once"


def _joined(messages):
    """A serializer's messages on one field (a list, maybe nested) as one reason."""
    return " ".join(str(m) for m in _flat(messages))


def _sku_field_problems(row, sku_field):
    """The SKU field's own refusal of a row's SKU (none given, blank, too long), as the row serializer words it.

    The field only, not the serializer's ``validate_sku`` or ``validate``: those may ask the database.
    """
    try:
        sku_field.run_validation(row.values.get("sku", empty))  # what the serializer hands its sku field
    except ValidationError as exc:
        return [{"field": "sku", "reason": _joined(exc.detail)}]
    except DjangoValidationError as exc:
        return [{"field": "sku", "reason": _joined(get_error_detail(exc))}]
    return []


@dataclass
class _Shown:
    """A row the check lists: its SKU as written and its problems before and after a duplicate's reason."""

    sku: object
    key: object
    before: list
    after: list
    alone: bool  # a row that cannot be read: its one problem, no duplicate's reason (as the import)


class RejectedRows:
    """The rows of a manifest the import will reject without looking at the database, for the upload check.

    Fed one row at a time by ``check_manifest``'s single read: a row that cannot be read
    (``Row.problem``), a field the row serializer lacks, a SKU with a character no one sees
    (``sku_problem``), a SKU on two rows (both are rejected), a SKU the SKU field refuses (none,
    blank, too long). ``count`` is how many rows that is; ``errors`` lists the problems of the
    first ``ROWS_SHOWN`` of them as the import reports them (``{"row", "field", "reason"}``, in
    its order and words). A row the import also refuses for another cell (a price, an image) shows
    only these reasons; one refused only for such a cell is not counted.

    ``rows`` counts every row, and ``products`` the rows the import may add or update a product
    from: a good row's SKU, until another row names it too (the import takes each SKU of them once).
    ``scientific`` counts the rows whose SKU ``looks_scientific``, rejected or not, and
    ``scientific_skus`` lists the first ``ROWS_SHOWN`` of them (``{"row", "sku"}``): a warning.

    Memory: each SKU's first row number (no list of all rows: ``scan_skus`` keeps those for the import),
    the first forms not in NFC (as ``scan_skus``), and the rows shown with the numbers of their SKUs.
    A row's duplicate is found at its SKU's second row, which may come long after rows already
    shown: the first rows are kept in order, and the later ones give way.
    """

    def __init__(self, *, shown=ROWS_SHOWN):
        self.count = self.rows = self.products = self.scientific = 0
        self.scientific_skus = []
        self._limit = shown
        self._first = {}  # sku_key -> its first row's number; negative once that row is counted as rejected
        self._first_forms = {}  # sku_key -> its first row's SKU, when that is not in NFC
        self._shown = {}  # row number -> _Shown
        self._numbers = {}  # sku_key of a row shown -> the numbers of its rows (up to DUPLICATE_ROWS_SHOWN)
        self._mixed = set()  # keys of _numbers written in more than one form

    def add(self, row, sku, key, *, sku_field, known):
        """Count ``row`` (its ``row_sku`` and that SKU's ``sku_key``): among the rows, the products or, if the import
        will reject it, the rejected rows, and among the SKUs that look scientific."""
        self.rows += 1
        if looks_scientific(sku):
            self.scientific += 1
            if len(self.scientific_skus) < self._limit:
                self.scientific_skus.append({"row": row.number, "sku": sku})
        if row.problem:
            before, after, alone = [{"field": row.problem_field, "reason": row.problem}], [], True
        else:
            unknown, unseen = _unknown_fields(row, known), sku_problem(sku)
            before = ([unknown] if unknown else []) + ([{"field": "sku", "reason": unseen}] if unseen else [])
            # The serializer's words on the same characters are left out, as the import leaves them out.
            after, alone = ([] if unseen else _sku_field_problems(row, sku_field)), False
        first = None if key is None else self._first.get(key)
        if first is not None and first > 0:  # the SKU's second row: its first row, good until now, is rejected too
            self._reject_first(key, first)
        if key in self._numbers:
            numbers = self._numbers[key]
            if len(numbers) < DUPLICATE_ROWS_SHOWN:
                numbers.append(row.number)
            if sku != self._first_forms.get(key, key):
                self._mixed.add(key)
        bad = bool(before or after) or first is not None
        if bad:
            self.count += 1
            self._offer(row.number, _Shown(sku, key, before, after, alone))
        if key is not None and first is None:
            self.products += 0 if bad else 1
            self._first[key] = -row.number if bad else row.number
            if sku != key:
                self._first_forms[key] = sku

    def _reject_first(self, key, first):
        """Count the first row of SKU ``key``, row ``first``, good until now, as rejected, and offer it to be shown."""
        self.count += 1
        self.products -= 1
        self._first[key] = -first
        self._offer(first, _Shown(self._first_forms.get(key, key), key, [], [], False))

    def sku_rows(self):
        """``{sku_key: [row numbers]}`` of the SKUs read, in ``scan_skus``' shape for ``look_alike.look_alikes``: each
        SKU's first row, and the rows of a SKU shown on two rows or more (up to ``DUPLICATE_ROWS_SHOWN``)."""
        return {key: self._numbers.get(key) or [abs(first)] for key, first in self._first.items()}

    def written(self, key):
        """SKU ``key`` as its first row writes it."""
        return self._first_forms.get(key, key)

    def reject_sku(self, key, problem):
        """Count the rows of SKU ``key`` (one that was read) as rejected for ``problem`` too, after their other SKU
        problems, as the import adds it (``look_alike.with_sku_problem``): a SKU that looks like another, which only
        the catalog tells."""
        first = self._first[key]
        if first > 0:
            self._reject_first(key, first)
        for shown in self._shown.values():
            if shown.key == key and not shown.alone:
                shown.after.append(problem)

    def _offer(self, number, shown):
        """Keep row ``number`` if it is among the first ``_limit`` rejected rows found so far."""
        if len(self._shown) >= self._limit and number > max(self._shown):
            return
        self._shown[number] = shown
        if shown.key is not None and shown.key not in self._numbers:
            self._numbers[shown.key] = [number]  # its first row: later ones are added as they are read
        if len(self._shown) > self._limit:
            dropped = self._shown.pop(max(self._shown))
            if all(other.key != dropped.key for other in self._shown.values()):
                self._numbers.pop(dropped.key, None)
                self._mixed.discard(dropped.key)

    def findings(self):
        """What the upload check found in the rows, as the merchant page's check and the API's upload answer both
        give it (one shape, written once): ``{"products", "rows": {"rejected", "errors"}, "scientific": {"count",
        "skus"}}``."""
        return {"products": self.products, "rows": {"rejected": self.count, "errors": self.errors},
                "scientific": {"count": self.scientific, "skus": list(self.scientific_skus)}}

    @property
    def errors(self):
        """The problems of the first rows rejected, ``[{"row", "field", "reason"}]``, as the import's ``errors``."""
        errors = []
        for number in sorted(self._shown):
            shown = self._shown[number]
            numbers = self._numbers.get(shown.key, [])
            duplicate = [] if shown.alone or len(numbers) < 2 else [{"field": "sku", "reason": _duplicate_reason(
                shown.sku, shown.key, numbers, mixed=shown.key in self._mixed)}]
            errors.extend({"row": number, **problem} for problem in shown.before + duplicate + shown.after)
        return errors


def scan_skus(job, sku_field):
    """The first pass over the manifest: ``({sku_key: [row numbers]}, rows, mixed)`` of every row, valid or not.

    ``mixed``: the keys whose rows write them in more than one form (``café`` composed on one
    row, decomposed on another). Only a SKU whose first row is not in NFC costs a second string.
    """
    skus, first_forms, mixed = defaultdict(list), {}, set()
    rows_total = 0
    with job.manifest.open("rb") as handle:
        columns, rows = read_manifest(handle, job.manifest.name, max_rows=int(app_settings.IMPORT_MAX_ROWS))
        for row in rows:
            rows_total += 1
            sku = row_sku(row, columns, sku_field)
            if sku is None:
                continue
            key = sku_key(sku)
            numbers = skus[key]
            if not numbers and sku != key:
                first_forms[key] = sku
            elif numbers and sku != first_forms.get(key, key):
                mixed.add(key)
            numbers.append(row.number)
    return skus, rows_total, mixed


def check_row(row, columns, known, writer, sku_field, duplicates, mixed):
    """Return ``(problems, valid, image names)`` of one row's cells; ``valid`` is None when they are invalid.

    ``valid`` is what ``writer.save`` takes; the images are checked apart (``row_images.prepare_images``).
    """
    if row.problem:
        return [{"field": row.problem_field, "reason": row.problem}], None, []
    unknown = _unknown_fields(row, known)
    problems = [unknown] if unknown else []
    sku = row_sku(row, columns, sku_field)
    unseen = sku_problem(sku)
    if unseen:  # the row's error, not the file's: the other rows are imported, a full sync spares this SKU
        problems.append({"field": "sku", "reason": unseen})
    key = sku_key(sku)
    if key in duplicates:
        problems.append({"field": "sku", "reason": _duplicate_reason(sku, key, duplicates[key], mixed=key in mixed)})
    valid, data, errors = writer.validate({key: value for key, value in row.values.items() if key in known})
    if errors:
        for field, messages in errors.items():
            if field == "sku" and unseen:
                continue  # the serializer's words on the same characters ("Null characters are not allowed.")
            problems.append({"field": field, "reason": _joined(messages)})
        return problems, None, []
    return problems, valid, data.get("images") or []


def _flat(messages):
    if isinstance(messages, dict):
        for value in messages.values():
            yield from _flat(value)
    elif isinstance(messages, list):
        for value in messages:
            yield from _flat(value)
    else:
        yield messages

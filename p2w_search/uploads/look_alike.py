"""SKUs that look the same as others, written in letters of another alphabet: an import refuses the new ones.

A merchant copying SKUs from a page typed on a Russian or Greek keyboard layout brings ``А-1``
(CYRILLIC CAPITAL LETTER A) beside the catalog's ``A-1``: a second product no one can tell from the
first, and in a full sync the first one unlisted. ``manifest.sku_problem`` refuses a SKU that mixes
the alphabets; a SKU written wholly in one is a merchant's right, so it is refused only when it
looks the same (``manifest.seen_sku``) as another SKU of the catalog or of the same file.
"""

from collections import defaultdict

from p2w_search.uploads.manifest import escaped_sku, seen_sku, sku_key, sku_problem
from p2w_search.uploads.rows import row_sku, shown_rows

__all__ = ["catalog_skus", "look_alikes", "look_alike_problem", "catalog_look_alike", "foresee", "with_sku_problem",
           "UNPLAIN_SKU_REGEX"]

# The SKUs that may look like another written in other characters: those outside printable ASCII. A shop's form
# reads only these of its catalog (``sku__regex``), and the one ``seen_sku`` names: plain SKUs are most of a catalog.
UNPLAIN_SKU_REGEX = r"[^ -~]"


def catalog_skus(serializer_class, merchant, listed):
    """The merchant's SKUs a new SKU must not look like: the shop's ``catalog_skus``, else the listed ones (``listed``
    when the full sync has read them already)."""
    catalog_skus = getattr(serializer_class, "catalog_skus", None)
    if catalog_skus is not None:
        return catalog_skus(merchant)
    return listed if listed is not None else serializer_class.listed_skus(merchant)


def look_alikes(skus, catalog):
    """``{key: [(other SKU, its row numbers, or None for the catalog's)]}``: the file's SKUs (the keys of ``skus``,
    ``sku_key`` -> row numbers) that no SKU of ``catalog`` reads as, but that look the same as another of the catalog
    or of the file (the same ``seen_sku``): ``А-1`` in Cyrillic letters beside ``A-1`` in Latin ones.

    Each would be a second product no one can tell from the first; which one is meant is unknown, so all the new
    ones are refused, as a SKU on two rows is. A row of the catalog's own SKU updates it, which adds no product. A SKU
    ``sku_problem`` refuses is left out on either side: its reason says what to write instead.
    """
    named = {key: numbers for key, numbers in skus.items() if sku_problem(key) is None}
    seen_as = {key: seen for key in named if (seen := seen_sku(key)) != key}  # only the SKUs not seen as written
    kept = _catalog_kept(catalog, named, seen_as)
    groups = defaultdict(set)  # what SKUs not seen as written are seen as -> those SKUs, and that one if there is one
    for key, seen in seen_as.items():
        groups[seen].add(key)
        if seen in named or seen in kept:
            groups[seen].add(seen)
    found = {}
    for keys in groups.values():
        if len(keys) < 2:
            continue
        for key in keys - kept.keys():
            others = sorted(keys - {key}, key=lambda other: (other not in kept, named.get(other, [0])[0]))
            found[key] = [(kept[other], None) if other in kept else (other, named[other]) for other in others]
    return found


def _catalog_kept(catalog, named, seen_as):
    """``{key: SKU as stored}`` of the catalog's SKUs that may look like one of ``named`` (the file's keys): the file's
    own, those the file's are seen as, and those not seen as written, which are added to ``seen_as``. Read as a
    stream: of a catalog of plain SKUs, no more are kept than the file names."""
    file_seen = set(seen_as.values())
    kept = {}
    for sku in catalog:
        key = sku_key(str(sku))
        seen = seen_sku(key)
        if (key in named or key in file_seen or seen != key) and sku_problem(key) is None:
            kept[key] = str(sku)
            if seen != key:
                seen_as[key] = seen
    return kept


def look_alike_problem(row, columns, sku_field, look_alikes):
    """The problem of a row whose SKU is one of ``look_alikes`` (``look_alikes``); None for any other row."""
    sku = row_sku(row, columns, sku_field) if look_alikes and not row.problem else None
    others = None if sku is None else look_alikes.get(sku_key(sku))
    return {"field": "sku", "reason": _look_alike_reason(sku, others)} if others else None


def foresee(rejected, serializer_class, merchant):
    """Count into ``rejected`` (the upload check's ``rows.RejectedRows``, once the file is read) the rows an import of
    it for ``merchant`` will reject for a SKU that looks like another of the catalog or of the file, in its words."""
    found = look_alikes(rejected.sku_rows(), catalog_skus(serializer_class, merchant, None))
    for key, others in found.items():
        rejected.reject_sku(key, {"field": "sku", "reason": _look_alike_reason(rejected.written(key), others)})


def catalog_look_alike(sku, catalog):
    """Why the SKU ``sku``, written by a form of one product (the product API, the admin), is refused for looking the
    same as a SKU of ``catalog`` written in other characters, in the import's words; None when it looks like none.

    ``catalog``: the merchant's other SKUs, or only those that may look like ``sku``: the one ``seen_sku(sku)`` names
    and those matching ``UNPLAIN_SKU_REGEX``. The catalog's own ``sku`` is an update, not a second product.
    """
    if sku_problem(sku) is not None:  # its own reason says what to write instead
        return None
    others = look_alikes({sku_key(sku): [1]}, catalog).get(sku_key(sku))
    return _look_alike_reason(sku, others) if others else None


def _look_alike_reason(sku, others):
    """Why a row whose SKU ``sku`` looks the same as ``others`` (``look_alikes``) is refused; the SKUs escaped."""
    named = " and as ".join(escaped_sku(other) + (", a SKU of your catalog" if numbers is None else
                                                  f" on {_rows(numbers)}") for other, numbers in others)
    if any(numbers is None for _, numbers in others):
        advice = ("to update that product, copy its SKU from your catalog; for another product, give a SKU that looks "
                  "like no other")
    else:
        advice = "give each product a SKU that looks like no other"
    return (f"sku {escaped_sku(sku)} looks the same as {named}, but is written in other characters: they would be two "
            f"products no one can tell apart; {advice}")


def _rows(numbers):
    """``row 4`` or ``rows 2, 4`` (``rows.shown_rows``)."""
    return f"row{'s' if len(numbers) > 1 else ''} {shown_rows(numbers)}"


def with_sku_problem(problems, problem):
    """``problems`` (``check_row``'s) with ``problem`` after the row's other SKU problems, before those of its other
    fields, in the order a reader checks them."""
    at = next((index for index, other in enumerate(problems) if other["field"] not in (None, "sku")), len(problems))
    return problems[:at] + [problem] + problems[at:]

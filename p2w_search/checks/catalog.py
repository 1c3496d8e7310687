"""The shop's models as the settings name them: the product model's filters, the import serializer, the
shop's own image model (``IMAGE_MODEL``). Called by ``check_settings``.
"""

from django.core import checks
from django.db import models

from p2w_search.conf import P2WImproperlyConfigured, app_settings, lookups_problem

__all__ = [
    "import_path_problems", "filter_problems", "search_filter_problems", "file_name_problems",
    "image_key_problems",
]


def import_path_problems():
    """E020: a dotted path that cannot be imported fails every search (or upload) that needs it; E021: an
    import serializer without what importer.py's contract asks fails the first upload."""
    from django.utils.module_loading import import_string

    problems, found = [], {}
    for name in ("FILTERSET_CLASS", "PRODUCT_SERIALIZER", "PRODUCT_QUERYSET", "IMPORT_SERIALIZER"):
        path = getattr(app_settings, name)
        if not path or (name == "PRODUCT_QUERYSET" and callable(path)):  # it may be the callable itself
            continue
        try:
            found[name] = import_string(path)
        except (ImportError, TypeError, ValueError) as exc:
            problems.append(checks.Error(f"P2W_SEARCH[{name!r}] is {path!r}, which cannot be imported: {exc}",
                                         id="p2w_search.E020"))
    if "IMPORT_SERIALIZER" in found:
        problems.extend(_import_serializer_problems(found["IMPORT_SERIALIZER"]))
    return problems


IMPORT_METHODS = ("merchant_for", "merchant_by_key", "listed_skus", "unlist")
IMPORT_FIELDS = ("sku", "images")


def _import_serializer_problems(serializer_class):
    from rest_framework.serializers import BaseSerializer

    path = app_settings.IMPORT_SERIALIZER
    hint = "Its contract is in the docstring of p2w_search/uploads/importer.py."
    if not (isinstance(serializer_class, type) and issubclass(serializer_class, BaseSerializer)):
        return [checks.Error(f"P2W_SEARCH['IMPORT_SERIALIZER'] ({path}) is not a DRF serializer class.", hint=hint,
                             id="p2w_search.E021")]
    methods = [f"{name}()" for name in IMPORT_METHODS if not callable(getattr(serializer_class, name, None))]
    fields = [repr(name) for name in IMPORT_FIELDS if name not in serializer_class().fields]
    missing = [f"the class method{'s' if len(methods) > 1 else ''} {', '.join(methods)}"] if methods else []
    missing += [f"the field{'s' if len(fields) > 1 else ''} {', '.join(fields)}"] if fields else []
    if not missing:
        return []
    return [checks.Error(f"P2W_SEARCH['IMPORT_SERIALIZER'] ({path}) lacks what an import needs: "
                         f"{'; '.join(missing)}.", hint=hint, id="p2w_search.E021")]


def search_filter_problems(model, label):
    """E022: SEARCH_FILTER is applied to every search: one the product model cannot take fails them all."""
    search_filter = app_settings.SEARCH_FILTER
    if not isinstance(search_filter, dict):
        return [checks.Error(f"P2W_SEARCH['SEARCH_FILTER'] must be a dict of field lookups, e.g. "
                             f"{{'listed': True}}, not {search_filter!r}.", id="p2w_search.E022")]
    reason = lookups_problem(model, search_filter)
    if reason:
        return [checks.Error(f"P2W_SEARCH['SEARCH_FILTER'] {search_filter!r} cannot filter {label}: {reason}",
                             id="p2w_search.E022")]
    return []


def file_name_problems(cfg):
    """A shop's file field that holds longer names than the mirror's ProductImage.file."""
    from p2w_search.models import FILE_NAME_LENGTH

    field = cfg["model"]._meta.get_field(cfg["file"])
    length = getattr(field, "max_length", None)
    if length is None or length <= FILE_NAME_LENGTH:
        return []
    return [checks.Warning(
        f"{cfg['model']._meta.label}.{cfg['file']} holds names of up to {length} characters; p2w_search's "
        f"mirror of an image holds {FILE_NAME_LENGTH}.",
        hint="An image with a longer name is not searched: each sync logs it and counts it as failed.",
        id="p2w_search.W012")]


def image_key_problems(cfg):
    """W014: a shop image model whose keys can be longer than the mirror's ``source_pk`` holds.

    The mirror finds the shop's image by its key as text (``str(pk)``); a key that does not fit
    (a CharField key of 100 characters, "products/tee/red-01/front.jpg", or a TextField's) made the
    mirror's insert fail, so that image was never searched, with nothing but a logged traceback at
    each sync. Integer and UUID keys always fit.
    """
    from p2w_search.models import ProductImage

    pk = cfg["model"]._meta.pk
    while pk.remote_field is not None:  # a key that is a one-to-one link to another model: that model's key
        pk = pk.target_field
    if not isinstance(pk, (models.CharField, models.TextField)):
        return []
    limit = ProductImage._meta.get_field("source_pk").max_length
    length = pk.max_length
    if length is not None and length <= limit:
        return []
    holds = f"up to {length} characters" if length is not None else "keys of any length"
    return [checks.Warning(
        f"{cfg['model']._meta.label}.{pk.name} holds {holds}; p2w_search's mirror of an image keeps "
        f"the key of the shop's image in {limit}.",
        hint="An image whose key is longer is not searched: each sync logs it and counts it as failed. Keep the "
             f"image model's keys to {limit} characters (max_length), or key it by an integer or a UUID.",
        id="p2w_search.W014")]


def filter_problems(model, label):
    from p2w_search.api.filters import filter_specs, resolve_path, resolve_where

    if app_settings.FILTERSET_CLASS:
        return []
    try:
        specs = filter_specs()
    except P2WImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="p2w_search.E003")]
    problems = []
    for name, paths, _, wheres in specs:
        for i, (path, where) in enumerate(zip(paths, wheres)):
            try:
                resolve_path(model, path)
                if where not in wheres[:i]:  # one error for a where that several paths repeat
                    resolve_where(model, name, where)
            except P2WImproperlyConfigured as exc:
                problems.append(checks.Error(str(exc), id="p2w_search.E003"))
    return problems

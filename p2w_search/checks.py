"""System checks: configuration a deployment gets wrong before the first search.

``manage.py check`` runs the settings checks; the database ones (``--database``, and every
``migrate``) look at pgvector. They must not block the command that fixes what they find:
before p2w_search's migrations have run, a missing ``vector`` extension is no error, since
the first migration creates it.
"""

import difflib
import math
import re
from dataclasses import dataclass

from django.apps import apps
from django.core import checks
from django.db import connections, models
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import DatabaseError

from p2w_search.conf import DEFAULTS, P2WImproperlyConfigured, app_settings, lookups_problem
from p2w_search.embedders.base import image_weight
from p2w_search.vector_extension import MIN_VERSION, create_hint, parse_version

__all__ = ["check_settings", "check_photo_storage", "check_database_routes", "check_vector_extension",
           "vector_extension_problems"]

_MIN = ".".join(map(str, MIN_VERSION))


@checks.register()
def check_settings(app_configs=None, **kwargs):
    from django.conf import settings

    errors = [*_unknown_key_problems(getattr(settings, "P2W_SEARCH", {})), *_number_problems(),
              *_rate_problems(), *_import_path_problems(), *_alias_problems(), *_prompt_problems(),
              *_backend_problems(), *_queue_problems(), *_index_memory_problems(), *_template_problems()]
    label = getattr(settings, "P2W_SEARCH_PRODUCT_MODEL", None)
    if not label:
        errors.append(checks.Error(
            "P2W_SEARCH_PRODUCT_MODEL is not set.",
            hint="Point it at the shop's product model, e.g. 'catalog.Product'.",
            id="p2w_search.E001",
        ))
        return errors
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        errors.append(checks.Error(f"P2W_SEARCH_PRODUCT_MODEL {label!r} is not an installed model.",
                                   id="p2w_search.E002"))
        return errors
    errors.extend(_filter_problems(model, label))
    errors.extend(_search_filter_problems(model, label))
    if "default" not in app_settings.EMBEDDERS:
        errors.append(checks.Error("P2W_SEARCH['EMBEDDERS'] needs a 'default' alias.", id="p2w_search.E004"))
    for alias, params in app_settings.EMBEDDERS.items():
        try:
            image_weight(alias, params)
        except ValueError as exc:
            errors.append(checks.Error(str(exc), id="p2w_search.E016"))
    if app_settings.QUERY_ENCODING not in ("worker", "local"):
        errors.append(checks.Error("P2W_SEARCH['QUERY_ENCODING'] must be 'worker' or 'local'.", id="p2w_search.E005"))
    errors.extend(_upload_problems())
    if app_settings.IMAGE_MODEL:
        from p2w_search import shop_images

        try:
            cfg = shop_images.config()
        except P2WImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="p2w_search.E015"))
        else:
            errors.extend(_unknown_key_problems(app_settings.IMAGE_MODEL, shop_images.KEYS,
                                                "P2W_SEARCH['IMAGE_MODEL']"))
            errors.extend(_file_name_problems(cfg))
            errors.extend(_image_key_problems(cfg))
    return errors


def _unknown_key_problems(user, known=DEFAULTS, where="P2W_SEARCH"):
    """W013: a key p2w_search does not read (a typo) is ignored, so its default silently applies."""
    problems = []
    for key in user:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        guess = f"; did you mean {close[0]!r}?" if close else "."
        problems.append(checks.Warning(
            f"{where} has the key {key!r}, which is no setting of p2w_search: it is ignored{guess}",
            id="p2w_search.W013"))
    return problems


@dataclass(frozen=True)
class _Number:
    """What a numeric setting must be for the code that reads it."""

    whole: bool = True  # int (some are used unconverted: file.read(MAX_IMAGE_BYTES + 1)), or any real number
    least: float = 1
    above: bool = False  # ``least`` itself is too little
    most: float | None = None
    none: str = ""  # what None means, where None is allowed
    why: str = ""

    def allows(self, value):
        if value is None:
            return bool(self.none)
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        if not math.isfinite(value) or value < self.least or (self.above and value == self.least):
            return False
        return self.most is None or value <= self.most

    def __str__(self):
        if self.most is not None:
            bounds = f"from {self.least} to {self.most}"
        else:
            bounds = f"{'above' if self.above else 'of at least'} {self.least}"
        described = f"{'a whole number' if self.whole else 'a number'} {bounds}{self.why}"
        return f"{described}, or None {self.none}" if self.none else described


# The numeric settings, as their readers need them (grep app_settings.NAME).
NUMBERS = {
    "QUERY_TIMEOUT": _Number(whole=False, least=0, above=True, why=" (seconds)"),
    "QUERY_BATCH_SIZE": _Number(),
    "TASK_BATCH_SIZE": _Number(),
    "IMAGE_THREADS": _Number(none="for as many as the process's cores, at most 4"),
    "SWEEP_AFTER": _Number(whole=False, least=0, above=True, why=" (seconds)"),
    "MAX_IMAGE_BYTES": _Number(),
    "MAX_IMAGE_PIXELS": _Number(),
    "MAX_IMAGE_ASPECT": _Number(whole=False),
    "IMPORT_MAX_FILES": _Number(),
    "IMPORT_MAX_BYTES": _Number(),
    "IMPORT_MAX_MANIFEST_BYTES": _Number(),
    "IMPORT_MAX_ROWS": _Number(),
    "IMPORT_MAX_IMAGES_PER_ROW": _Number(),
    "IMPORT_MAX_WAITING": _Number(none="for no limit"),
    "IMPORT_MAX_RATIO": _Number(whole=False),
    "IMPORT_ERRORS_SHOWN": _Number(least=0),
    "FULL_SYNC_MAX_UNLIST_SHARE": _Number(whole=False, least=0, most=1, why=" (a share: 0.2 is 20 %)"),
    "UPLOAD_RETENTION_DAYS": _Number(whole=False, least=0),
    "PHOTO_KEEP_SECONDS": _Number(whole=False, least=0, above=True),
    "PHOTO_KEEP_MAX": _Number(),
    "DEFAULT_K": _Number(),
    "MAX_K": _Number(),
    "PAGE_SIZE": _Number(),
    "EF_SEARCH": _Number(most=1000, why=", pgvector's range for hnsw.ef_search"),
    "FILTER_EXACT_ROWS": _Number(least=0, none="(as 0: always walk the graph)"),
    "HNSW_M": _Number(least=2, most=100, why=", pgvector's range for m"),
    "HNSW_EF_CONSTRUCTION": _Number(least=4, most=1000, why=", pgvector's range for ef_construction"),
}


def _number_problems():
    """E017: a number of the wrong type or range fails searches (500) or imports, or, like a share of 20
    meant as 20 %, silently lifts a limit; E018: two numbers that contradict each other."""
    wrong = [name for name, spec in NUMBERS.items() if not spec.allows(getattr(app_settings, name))]
    problems = [checks.Error(f"P2W_SEARCH[{name!r}] must be {NUMBERS[name]}, not {getattr(app_settings, name)!r}.",
                             id="p2w_search.E017") for name in wrong]
    default_k, max_k = app_settings.DEFAULT_K, app_settings.MAX_K
    if not {"DEFAULT_K", "MAX_K"} & set(wrong) and default_k > max_k:
        problems.append(checks.Error(
            f"P2W_SEARCH['DEFAULT_K'] is {default_k}, more than P2W_SEARCH['MAX_K'] ({max_k}): a search that asks "
            "for no k would return more products than any search may ask for.", id="p2w_search.E018"))
    m, ef_construction = app_settings.HNSW_M, app_settings.HNSW_EF_CONSTRUCTION
    if not {"HNSW_M", "HNSW_EF_CONSTRUCTION"} & set(wrong) and ef_construction < 2 * m:
        problems.append(checks.Error(
            f"P2W_SEARCH['HNSW_EF_CONSTRUCTION'] is {ef_construction}, less than twice P2W_SEARCH['HNSW_M'] ({m}): "
            "pgvector builds no HNSW index with ef_construction < 2 * m.", id="p2w_search.E018"))
    return problems


def _rate_problems():
    """E019: DRF reads ANON_SEARCH_RATE on every search, so a rate it cannot parse is a 500 on each; the merchant
    login page reads LOGIN_FAILURE_RATE on each attempt."""
    from rest_framework.throttling import SimpleRateThrottle

    problems = []
    for name, what in (("ANON_SEARCH_RATE", "search"), ("LOGIN_FAILURE_RATE", "failed login")):
        rate = getattr(app_settings, name)
        if rate is None:
            continue
        try:
            requests, _ = SimpleRateThrottle.parse_rate(None, rate)  # as DRF parses it for each request
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            requests = None
        if requests is not None and requests >= 1:
            continue
        problems.append(checks.Error(
            f"P2W_SEARCH[{name!r}] must be a rate of at least 1 {what} per second, minute, hour or day "
            f"(e.g. '{DEFAULTS[name]}'), or None for no limit, not {rate!r}.", id="p2w_search.E019"))
    return problems


def _import_path_problems():
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


def _search_filter_problems(model, label):
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


def _alias_problems():
    """E023: a name its registry lacks: SEARCH_DATABASE fails every search (500), PROMPT every composed
    one, and SEARCH_HEALTH_CACHE records nothing, with only a log line to say so."""
    from django.conf import settings

    problems = []
    for name, where, known in [("SEARCH_DATABASE", "DATABASES", settings.DATABASES),
                               ("SEARCH_HEALTH_CACHE", "CACHES", settings.CACHES),
                               ("PROMPT", "P2W_SEARCH['PROMPTS']",
                               app_settings.PROMPTS if isinstance(app_settings.PROMPTS, dict) else {})]:
        value = getattr(app_settings, name)
        if (isinstance(value, str) and value in known) or (name == "SEARCH_HEALTH_CACHE" and value is None):
            continue  # None: record nothing
        problems.append(checks.Error(f"P2W_SEARCH[{name!r}] is {value!r}, which {where} does not have.",
                                     id="p2w_search.E023"))
    return problems


def _prompt_problems():
    """E024: a template without ``*`` fails every composed search that uses it, and one without ``{text}`` (or
    with ``{text}`` twice) drops or doubles the shopper's words without a word; another ``{...}`` is a typo."""
    prompts = app_settings.PROMPTS
    if not isinstance(prompts, dict) or not prompts:
        return [checks.Error(f"P2W_SEARCH['PROMPTS'] must be a dict of prompt templates by name, e.g. "
                             f"{{'paper': 'a photo of * , {{text}}'}}, not {prompts!r}.", id="p2w_search.E024")]
    problems = []
    for name, template in prompts.items():
        where = f"P2W_SEARCH['PROMPTS'][{name!r}]"
        if not isinstance(template, str):
            problems.append(checks.Error(f"{where} must be a string, not {template!r}.", id="p2w_search.E024"))
            continue
        wrong = []
        if template.count("*") != 1:
            wrong.append(f"it has {template.count('*')} '*' (the photo's pseudo word), where it needs one")
        if template.count("{text}") != 1:
            wrong.append(f"it has {template.count('{text}')} '{{text}}' (the shopper's words), where it needs one")
        others = sorted(set(re.findall(r"\{[^{}]*\}", template)) - {"{text}"})
        if others:
            wrong.append(f"{', '.join(others)} is no placeholder ('{{text}}' is the only one)")
        if wrong:
            problems.append(checks.Error(f"{where} is {template!r}: {'; '.join(wrong)}.",
                                         hint="For example 'a photo of * , {text}'.", id="p2w_search.E024"))
    return problems


def _backend_problems():
    """E020 for an embedder's BACKEND whose module does not exist: the worker that loads it fails at start.

    Only the module is looked for (its parents are imported, not it): a web process without the
    ``models`` extra has no torch, and must pass its checks all the same.
    """
    from importlib.util import find_spec

    problems = []
    for alias, params in app_settings.EMBEDDERS.items():
        path = params.get("BACKEND") if isinstance(params, dict) else None
        module, _, name = path.rpartition(".") if isinstance(path, str) else ("", "", "")
        try:
            found_module = bool(module and name) and find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package that does not exist, or an empty name
            found_module = False
        if not found_module:
            problems.append(checks.Error(
                f"P2W_SEARCH['EMBEDDERS'][{alias!r}]['BACKEND'] is {path!r}, which names no module that can be "
                "imported.", hint="The dotted path of an embedder class, e.g. "
                f"{DEFAULTS['EMBEDDERS']['default']['BACKEND']!r}.", id="p2w_search.E020"))
    return problems


def _queue_problems():
    """E025: a queue name that is no text; W015: one queue for both, where queries wait behind whole catalogs."""
    bulk, query = app_settings.BULK_QUEUE, app_settings.QUERY_QUEUE
    problems = [checks.Error(f"P2W_SEARCH[{name!r}] must be a queue's name (text), not {value!r}.",
                             id="p2w_search.E025")
                for name, value in (("BULK_QUEUE", bulk), ("QUERY_QUEUE", query))
                if not (isinstance(value, str) and value.strip())]
    if not problems and bulk == query:
        problems.append(checks.Warning(
            f"P2W_SEARCH['BULK_QUEUE'] and P2W_SEARCH['QUERY_QUEUE'] are both {bulk!r}: a shopper's query waits "
            "behind every embedding batch sent before it (a catalog's upload: minutes).",
            hint="Give them different names, each with its own worker (README, 'Workers').", id="p2w_search.W015"))
    return problems


def _template_problems():
    """E027: no template backend finds the app's templates (the shopper's pieces, the merchant pages), which are
    Django templates: a shop whose only backend is Jinja2 would answer each of those pages with a 500."""
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template

    name = "p2w_search/like_this/product.html"
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return [checks.Error(
            f"No template backend finds the app's templates ({name}), which are Django templates.",
            hint="Keep a DjangoTemplates backend with APP_DIRS True in TEMPLATES (after the Jinja2 one, if the "
                 "shop's pages are Jinja2: README, 'The same journey in a host shop's pages').",
            id="p2w_search.E027")]
    return []


# PostgreSQL's memory units (case-sensitive, as the server reads them); a bare number is kB.
_MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB)?\s*")
_KB = {"B": 1 / 1024, None: 1, "kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3}


def _index_memory_problems():
    """E026: an INDEX_BUILD_MEMORY PostgreSQL cannot read (or below its 1MB) fails every index build."""
    value = app_settings.INDEX_BUILD_MEMORY
    match = _MEMORY.fullmatch(value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        kb = value
    elif match:
        kb = float(match[1]) * _KB[match[2]]
    else:
        kb = None
    if kb is not None and 1024 <= kb < 2**31:
        return []
    return [checks.Error(f"P2W_SEARCH['INDEX_BUILD_MEMORY'] is {value!r}: PostgreSQL's maintenance_work_mem takes "
                         "from 1MB to 2TB, as a number and a unit (B, kB, MB, GB or TB, in that case; no unit: kB).",
                         hint="For example '1GB'.", id="p2w_search.E026")]


def _file_name_problems(cfg):
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


def _image_key_problems(cfg):
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


def _filter_problems(model, label):
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


def _upload_problems():
    """E013: uploads are mounted but cannot run; E014: their storage (where the photo search keeps shoppers' photos
    too) is missing or served publicly."""
    from pathlib import Path

    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("p2w_uploads:import-list")
    except NoReverseMatch:
        uploads = False  # this shop takes no catalog uploads
    else:
        uploads = True
    photo_page = _photo_search_route()
    if not uploads and photo_page is None:
        return []
    problems = []
    if uploads and not app_settings.IMPORT_SERIALIZER:
        problems.append(checks.Error(
            "The upload URLs (p2w_search.api.upload_urls) are mounted, but P2W_SEARCH['IMPORT_SERIALIZER'] is not set.",
            hint="Set it to the serializer of one catalog row, or do not include p2w_search.api.upload_urls.",
            id="p2w_search.E013"))
    from p2w_search.uploads.storage import upload_backend

    try:
        backend = upload_backend()
    except P2WImproperlyConfigured as exc:
        message = str(exc) if uploads else (  # the photo page alone: every photo a shopper sent was a 500
            f"STORAGES has no {app_settings.UPLOAD_STORAGE!r} storage (P2W_SEARCH['UPLOAD_STORAGE']), where the "
            f"photo search at /{photo_page} (PhotoSearchView) keeps shoppers' photos: add one that is never served "
            "publicly, e.g. a FileSystemStorage outside MEDIA_ROOT.")
        return [*problems, checks.Error(message, id="p2w_search.E014")]
    location = getattr(backend, "location", None)
    media = getattr(settings, "MEDIA_ROOT", None)
    if location and media and Path(location).resolve().is_relative_to(Path(media).resolve()):
        problems.append(checks.Error(
            f"Merchants' uploads (STORAGES[{app_settings.UPLOAD_STORAGE!r}]) are kept in {location}, inside "
            "MEDIA_ROOT, which is served publicly.", hint="Give the upload storage a folder outside MEDIA_ROOT.",
            id="p2w_search.E014"))
    return problems


def _photo_search_route(patterns=None, prefix=""):
    """The route of the first view of the URLconf that is a PhotoSearchView (or a subclass), or None.

    Such a page keeps each photo a shopper sends in the upload storage (p2w_search.photos), whether or
    not the shop takes catalog uploads.
    """
    from django.urls import URLResolver, get_resolver

    from p2w_search.shopper.views import PhotoSearchView

    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found = _photo_search_route(pattern.url_patterns, route)
            if found is not None:
                return found
        else:
            view_class = getattr(pattern.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, PhotoSearchView):
                return route
    return None


@checks.register()
def check_photo_storage(app_configs=None, **kwargs):
    """E028: a template of the shop's own renders the photo box (``like_your_photo``), which keeps shoppers' photos
    in ``UPLOAD_STORAGE``, and that storage is missing or cannot be made: every photo a shopper sent was a 500 that
    ``manage.py check`` did not foresee. (A view of the shop's own that calls ``journey.accept_photo`` shows the box
    too; the call itself raises the same words.) The upload URLs and PhotoSearchView are E014's, so a shop with
    either gets one error, not two."""
    from p2w_search.shopper.journey import photo_storage_problem

    if photo_storage_problem() is None or _uploads_mounted() or _photo_search_route() is not None:
        return []
    template = _photo_box_template()
    if template is None:
        return []
    return [checks.Error(photo_storage_problem(by=f"the photo box of the template {template} (like_your_photo)"),
                         id="p2w_search.E028")]


def _uploads_mounted():
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("p2w_uploads:import-list")
    except NoReverseMatch:
        return False
    return True


def _photo_box_template():
    """The name of the first template of the shop's own that renders the photo box (``like_your_photo``), or None.

    The app's own templates are left out: its photo page is PhotoSearchView's (E014). Read only when
    the storage is unusable, so a shop set up right pays nothing for the scan.
    """
    from pathlib import Path

    from django.core.exceptions import ImproperlyConfigured
    from django.template import engines

    own = (Path(__file__).resolve().parent / "templates").resolve()
    try:
        folders = [Path(folder) for engine in engines.all() for folder in engine.template_dirs]
    except (ImproperlyConfigured, ImportError):  # TEMPLATES itself is wrong: Django's own checks say so
        return None
    for folder in folders:
        if not folder.is_dir() or folder.resolve() == own:
            continue
        for file in sorted(folder.rglob("*")):
            try:
                if file.is_file() and file.stat().st_size < 1024**2 and b"like_your_photo" in file.read_bytes():
                    return file.relative_to(folder).as_posix()
            except OSError:
                continue
    return None


@checks.register()
def check_database_routes(app_configs=None, **kwargs):
    """E029: a model that p2w_search writes or joins, which ``DATABASE_ROUTERS`` writes to another database.

    p2w_search works on one database, ``default``: its transactions, locks and raw SQL use that connection, its
    mirrors of the shop's images hold foreign keys to the products, and a search joins the products with their
    vectors in one query. A catalog routed to a second database would have its rows there and their mirrors
    and vectors here, and nothing said so. Reads may still go elsewhere (a replica router, and
    ``SEARCH_DATABASE`` for searches): only where writes go is checked.
    """
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, router

    if not settings.DATABASE_ROUTERS:
        return []
    problems = []
    for label, model in _models_written():
        alias = router.db_for_write(model)
        if alias != DEFAULT_DB_ALIAS:
            problems.append(checks.Error(
                f"DATABASE_ROUTERS writes {label} to the database {alias!r}; p2w_search needs the products, the "
                f"shop's images and its own tables in one database, {DEFAULT_DB_ALIAS!r}.",
                hint=f"Route writes of {label} to {DEFAULT_DB_ALIAS!r} (reads may go to a replica; searches read "
                     "P2W_SEARCH['SEARCH_DATABASE']).",
                id="p2w_search.E029"))
    return problems


def _models_written():
    """``(label, model)`` of the product model, the shop's image model and p2w_search's models, those that resolve
    (the settings checks report the others)."""
    from django.conf import settings

    labels = [getattr(settings, "P2W_SEARCH_PRODUCT_MODEL", None)]
    if isinstance(app_settings.IMAGE_MODEL, dict):
        labels.append(app_settings.IMAGE_MODEL.get("MODEL"))
    found = []
    for label in labels:
        try:
            found.append((label, apps.get_model(label)))
        except (LookupError, ValueError, TypeError, AttributeError):
            continue
    own = apps.get_app_config("p2w_search").get_models()
    return [*found, *((model._meta.label, model) for model in own)]


@checks.register(checks.Tags.database)
def check_vector_extension(app_configs=None, databases=None, **kwargs):
    errors = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            errors.append(checks.Error("p2w_search needs PostgreSQL with the pgvector extension.",
                                       id="p2w_search.E010"))
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                installed = cursor.fetchone()
                cursor.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
                available = cursor.fetchone()
            recorder = MigrationRecorder(connection)
            migrated = recorder.has_table() and recorder.migration_qs.filter(app="p2w_search").exists()
        except DatabaseError as exc:
            errors.append(checks.Warning(f"Could not check for pgvector: {exc}", id="p2w_search.W011"))
            continue
        errors.extend(vector_extension_problems(
            database=connection.settings_dict["NAME"], installed=installed and installed[0],
            available=available and available[0], migrated=migrated,
        ))
    return errors


def vector_extension_problems(*, database, installed, available, migrated):
    """The check's findings for one PostgreSQL database, from what it reports.

    ``installed``: the extension's version in the database, or None; ``available``: the
    version the server would create, or None when the server has no pgvector; ``migrated``:
    whether p2w_search's migrations have run there (the first one creates the extension).
    """
    if installed is None and available is None:
        return [checks.Error(
            f"The PostgreSQL server of database {database!r} does not have pgvector, so the 'vector' extension "
            "cannot be created.",
            hint=f"Install pgvector {_MIN} or newer on the server (e.g. the pgvector/pgvector image or the "
                 "postgresql-NN-pgvector package), then run the migrations.",
            id="p2w_search.E011",
        )]
    if installed is None and migrated:
        return [checks.Error(
            f"The 'vector' extension is not installed in database {database!r}, though p2w_search's migrations "
            "have run there.",
            hint=create_hint(database),
            id="p2w_search.E011",
        )]
    version = installed or available  # not installed yet: the first migration will create this one
    if parse_version(version) >= MIN_VERSION:
        return []
    if installed:
        where, remedy = "in", "then a superuser runs ALTER EXTENSION vector UPDATE; in that database"
    else:
        where, remedy = "offered by the server of", "then run the migrations"
    return [checks.Error(
        f"pgvector {version} {where} database {database!r} is too old: iterative index scans need {_MIN} or newer.",
        hint=f"Install pgvector {_MIN} or newer on the server; {remedy}.",
        id="p2w_search.E012",
    )]

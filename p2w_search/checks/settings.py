"""``P2W_SEARCH`` and the settings around it, checked by ``manage.py check`` (``check_settings``).

Each problem is one message with its id (README, "System checks"); the shop's models as the
settings name them are catalog.py's, the pages' mounts and storage pages.py's.
"""

import difflib
import math
import re
from dataclasses import dataclass

from django.apps import apps
from django.core import checks

from p2w_search.checks.catalog import (
    file_name_problems,
    filter_problems,
    image_key_problems,
    import_path_problems,
    search_filter_problems,
)
from p2w_search.checks.pages import upload_problems
from p2w_search.conf import DEFAULTS, P2WImproperlyConfigured, app_settings
from p2w_search.embedders.base import image_weight

__all__ = ["check_settings", "NUMBERS"]


@checks.register()
def check_settings(app_configs=None, **kwargs):
    from django.conf import settings

    errors = [*_unknown_key_problems(getattr(settings, "P2W_SEARCH", {})), *_number_problems(),
              *_rate_problems(), *import_path_problems(), *_alias_problems(), *_prompt_problems(),
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
    errors.extend(filter_problems(model, label))
    errors.extend(search_filter_problems(model, label))
    if "default" not in app_settings.EMBEDDERS:
        errors.append(checks.Error("P2W_SEARCH['EMBEDDERS'] needs a 'default' alias.", id="p2w_search.E004"))
    for alias, params in app_settings.EMBEDDERS.items():
        try:
            image_weight(alias, params)
        except ValueError as exc:
            errors.append(checks.Error(str(exc), id="p2w_search.E016"))
    if app_settings.QUERY_ENCODING not in ("worker", "local"):
        errors.append(checks.Error("P2W_SEARCH['QUERY_ENCODING'] must be 'worker' or 'local'.", id="p2w_search.E005"))
    errors.extend(upload_problems())
    if app_settings.IMAGE_MODEL:
        from p2w_search import shop_images

        try:
            cfg = shop_images.config()
        except P2WImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="p2w_search.E015"))
        else:
            errors.extend(_unknown_key_problems(app_settings.IMAGE_MODEL, shop_images.KEYS,
                                                "P2W_SEARCH['IMAGE_MODEL']"))
            errors.extend(file_name_problems(cfg))
            errors.extend(image_key_problems(cfg))
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

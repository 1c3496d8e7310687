"""Settings of the app: ``settings.P2W_SEARCH`` over ``DEFAULTS``.

Read values through ``app_settings.NAME`` at call time, never at import time, so that
``override_settings(P2W_SEARCH=...)`` takes effect (the cache is dropped on Django's
``setting_changed`` signal).
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["DEFAULTS", "app_settings", "product_model_label", "image_limits", "lookups_problem",
           "P2WImproperlyConfigured"]

DEFAULTS = {
    # Filters of search requests: product fields by name ("category"), or {parameter: path} with
    # "__" paths across relations ({"price": "stockrecords__price"}), several paths for one
    # parameter ({"price": ["stockrecords__price", "children__stockrecords__price"]}: any matches),
    # category trees ({"category": {"path": "categories", "descendants": True}}) and fixed lookups
    # the same related row must meet ({"price": {"path": "variants__channel_listings__price_amount",
    # "where": {"variants__channel_listings__channel__slug": "default-channel"}}}; several paths:
    # [{"path": ..., "where": ...}, ...]). README, "Add p2w-search to an existing shop", "Filters".
    "FILTER_FIELDS": [],
    # Or a django-filter FilterSet of the shop's own for the product model (dotted path).
    "FILTERSET_CLASS": None,
    # Dotted path of a serializer for the product data in search results (default: all fields).
    "PRODUCT_SERIALIZER": None,
    # Dotted path of a callable that prepares the products of a page of results for display
    # (queryset -> queryset with select_related/prefetch_related); default: select_related().
    "PRODUCT_QUERYSET": None,
    # The shop's own image model, if it has one: {"MODEL": "catalogue.ProductImage", "PRODUCT":
    # "product", "FILE": "original", "ORDER": "display_order"}, and "MAIN": "is_main" where a flag marks
    # a product's main picture (searched by first), and "FILTER": {"type": "IMAGE"}, field lookups its
    # images match, where it holds other media too (videos). The index follows it (its files are read
    # where they are, never copied); without it, images are p2w_search's ProductImage.
    "IMAGE_MODEL": None,
    # Embedder backends by alias, like CACHES; "default" embeds new images.
    "EMBEDDERS": {
        "default": {
            "BACKEND": "p2w_search.embedders.openclip.OpenCLIPEmbedder",
            "MODEL": "ViT-L-14",
            "PRETRAINED": "openai",
        }
    },
    # The database alias searches read: a streaming replica of the primary takes their load
    # (writes, imports, the admin and the workers use the primary). README, "Scale beyond one machine".
    "SEARCH_DATABASE": "default",
    # "worker": query encoding runs on the Celery query queue; "local": in the web process.
    "QUERY_ENCODING": "worker",
    # Seconds the API waits for a query encoding before it answers 503.
    "QUERY_TIMEOUT": 10.0,
    # The most queries a query worker encodes together (those that arrive while it encodes
    # others; a lone query is not kept waiting). Run the query worker with --pool threads
    # --concurrency of this size; 1 encodes each query alone.
    "QUERY_BATCH_SIZE": 8,
    "BULK_QUEUE": "p2w_bulk",
    "QUERY_QUEUE": "p2w_query",
    # Images per embedding task.
    "TASK_BATCH_SIZE": 32,
    # Threads per process that decode, check and preprocess images (imports and embedding
    # workers; threads.py); None: as many as the process's cores, at most 4; 1: no threads.
    "IMAGE_THREADS": None,
    # Seconds after which an image still pending is queued again by the sweep.
    "SWEEP_AFTER": 300.0,
    # Pic2Word prompt templates by name ("*" is the reference image's pseudo word) and the default.
    "PROMPTS": {
        "paper": "a photo of * , {text}",
        "bare": "* , {text}",
        "but": "a photo of * , but {text}",
    },
    "PROMPT": "paper",
    # Limits on untrusted images (uploads, catalog files and query photos); README, "Limits".
    "MAX_IMAGE_BYTES": 10 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 40_000_000,
    # The long side of an image may be at most this many times its short side.
    "MAX_IMAGE_ASPECT": 20,
    # Catalog imports: the serializer of one manifest row (the shop's), and the upload's limits.
    "IMPORT_SERIALIZER": None,
    "IMPORT_MAX_FILES": 20_000,
    "IMPORT_MAX_BYTES": 2 * 1024**3,
    "IMPORT_MAX_MANIFEST_BYTES": 50 * 1024**2,
    "IMPORT_MAX_ROWS": 100_000,
    "IMPORT_MAX_IMAGES_PER_ROW": 20,
    # Uploads one merchant may have waiting (queued or running); one more is refused (429) until one
    # ends: each keeps up to IMPORT_MAX_BYTES in UPLOAD_STORAGE, and the bulk queue is every merchant's.
    # None: no limit. p2w_import, run on the server, is not limited (uploads/limits.py).
    "IMPORT_MAX_WAITING": 5,
    # Images compress little; an entry that inflates more than this is a zip bomb.
    "IMPORT_MAX_RATIO": 100,
    # Row errors a job's answer lists; all of them are in its rejected-rows file.
    "IMPORT_ERRORS_SHOWN": 100,
    # A full sync that would unlist more than this share of the merchant's listed products
    # (or that accepted no row) is refused unless the upload confirms the exact count.
    "FULL_SYNC_MAX_UNLIST_SHARE": 0.2,
    # Where uploaded manifests and archives are kept: an alias of Django's STORAGES that is
    # never served publicly; files are deleted this many days after their job ended.
    "UPLOAD_STORAGE": "p2w_uploads",
    "UPLOAD_RETENTION_DAYS": 7,
    # A shopper's search photo is kept this many seconds after its upload (in UPLOAD_STORAGE, readable
    # only by the session that sent it), so the search can be refined, paged and filtered without
    # uploading it again; then it is deleted and a link to it says so (p2w_search.photos).
    "PHOTO_KEEP_SECONDS": 30 * 60,
    # At most this many shoppers' photos are kept at once, of all sessions together (each at most 1024 px on its
    # long side): the newest stay, so many addresses cannot fill the disk. The oldest go first.
    "PHOTO_KEEP_MAX": 2000,
    # Fetching image URLs named in a manifest is off: it reaches out from the server.
    "IMPORT_FETCH_URLS": False,
    # Product filter every search applies (e.g. {"listed": True} hides unlisted products).
    "SEARCH_FILTER": {},
    # The cache alias that keeps the search health the admin page shows (per-minute counts and
    # latencies of the last hour; README, "Admins"); None records nothing.
    "SEARCH_HEALTH_CACHE": "default",
    # A Flower (Celery monitor) URL the admin's index page links to, where a deployment runs one.
    "FLOWER_URL": None,
    # Anonymous searches allowed per client address (DRF rate syntax, e.g. "60/min"); None: unlimited.
    "ANON_SEARCH_RATE": "120/min",
    # Failed logins on the merchant pages allowed per client address and username (DRF rate syntax); one more is
    # refused (429) without looking at the password, until the oldest failure is that old. None: unlimited.
    "LOGIN_FAILURE_RATE": "10/hour",
    # Search results: default and largest top-k, and the page size.
    "DEFAULT_K": 20,
    "MAX_K": 200,
    "PAGE_SIZE": 20,
    # HNSW candidate list size; higher is slower and closer to exact search. 200 is the smallest
    # tried that keeps Recall@10 of composed queries >= 0.98 with and without a filter on 50k
    # demo products (bench/results/index_recall.md: 100 gave 0.967 unfiltered).
    "EF_SEARCH": 200,
    # A filter the planner estimates at most this many image rows is ranked exactly (tens of ms);
    # a larger one walks the graph with the filter (hnsw.iterative_scan). The walk is not exact for
    # a filter far from the query: at hnsw.max_scan_tuples pgvector returns the candidates it has
    # not explored (Recall@10 0.44 for a far 10 % filter of 50k products; bench/results/filtered_tail.md).
    # 0: always walk.
    "FILTER_EXACT_ROWS": 20_000,
    "HNSW_M": 16,
    "HNSW_EF_CONSTRUCTION": 64,
    # Memory PostgreSQL may use to build an HNSW index (a build in memory is several times faster).
    "INDEX_BUILD_MEMORY": "1GB",
}


class P2WImproperlyConfigured(ImproperlyConfigured):
    """A P2W_SEARCH setting is wrong; the message names it."""


class AppSettings:
    def __init__(self, defaults):
        self.defaults = defaults
        self._cache = {}

    def __getattr__(self, name):
        if name not in self.defaults:
            raise AttributeError(f"Invalid P2W_SEARCH setting: {name!r}")
        if name not in self._cache:
            user = getattr(settings, "P2W_SEARCH", {})
            self._cache[name] = user.get(name, self.defaults[name])
        return self._cache[name]

    def reload(self):
        self._cache.clear()


app_settings = AppSettings(DEFAULTS)


def product_model_label():
    """Return the ``app_label.ModelName`` of the shop's product model."""
    try:
        return settings.P2W_SEARCH_PRODUCT_MODEL
    except AttributeError:
        raise P2WImproperlyConfigured(
            "Set P2W_SEARCH_PRODUCT_MODEL to the shop's product model, e.g. 'catalog.Product'."
        ) from None


def image_limits():
    """The limits on untrusted images, as keyword arguments of ``imaging.load_image``."""
    return {
        "max_bytes": int(app_settings.MAX_IMAGE_BYTES),
        "max_pixels": int(app_settings.MAX_IMAGE_PIXELS),
        "max_aspect": float(app_settings.MAX_IMAGE_ASPECT),
    }


def lookups_problem(model, lookups):
    """Why ``model`` cannot take the field lookups ``lookups`` (a setting's ``{"type": "IMAGE"}``), or None.

    The query is built, never run: a check needs no database. The reason is Django's, without
    the brackets of a ValidationError's list.
    """
    from django.core.exceptions import FieldError, ValidationError

    try:
        model._default_manager.filter(**lookups)
    except ValidationError as exc:
        return " ".join(exc.messages)
    except (FieldError, TypeError, ValueError) as exc:
        return str(exc)
    return None


@receiver(setting_changed)
def _reload(*, setting, **kwargs):
    if setting == "P2W_SEARCH":
        app_settings.reload()

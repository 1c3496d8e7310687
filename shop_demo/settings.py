"""Settings of the demo shop.

Everything a deployment changes comes from the environment (see README, "Configuration").
Without ``DATABASE_URL`` / ``REDIS_URL`` the embedded PostgreSQL and Redis that
``shop_demo.services`` starts under ``P2W_VAR_DIR`` are used.
"""

import logging
import math
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from shop_demo import services

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = services.var_dir()


# A value the demo cannot use stops every command and worker as it starts, with one line that names
# the variable (manage.py prints just that line). A variable set to "" counts as unset.
def env_value(name):
    return os.environ.get(name, "").strip() or None


def refuse(name, must_be, value):
    raise ImproperlyConfigured(f"{name} must be {must_be}, not {value!r}.")


def env_int(name, default, *, minimum):
    value = env_value(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        refuse(name, f"a whole number of at least {minimum}", value)
    return number


def env_float(name, default, *, minimum, above=False, why=""):
    """A finite number of at least ``minimum`` (with ``above``: greater than it)."""
    value = env_value(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < minimum or (above and number == minimum):
        refuse(name, f"a number {'greater than' if above else 'of at least'} {minimum:g}{why}", value)
    return number


def env_match(name, default, pattern, must_be):
    value = env_value(name)
    if value is None:
        return default
    if not re.fullmatch(pattern, value):
        refuse(name, must_be, value)
    return value


def env_bool(name, default):
    words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    value = env_match(name, None, "(?i)" + "|".join(words), "true or false (or 1/0, yes/no, on/off)")
    return default if value is None else words[value.lower()]


def env_list(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# Debug pages show settings and server paths to whoever triggers an error: only when asked for.
DEBUG = env_bool("DJANGO_DEBUG", False)
# The fallback key is for the demo only; production sets DJANGO_SECRET_KEY (checked by `manage.py check --deploy`).
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "p2w-demo-insecure-key-change-me")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "shop_demo.catalog",
    "shop_demo.storefront",
    "p2w_search",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database that cannot be reached is a 503 that says so, not a 500 (the app's API answers it itself).
    "shop_demo.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "shop_demo.urls"
WSGI_APPLICATION = "shop_demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "shop_demo" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Seconds a database connection is kept for the next request (0: one per request).
conn_max_age = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or services.embedded_database_url(),
        conn_max_age=conn_max_age,
        conn_health_checks=True,
    )
}
# Searches may read a streaming replica of the primary (everything else uses the primary).
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(
        os.environ["DATABASE_REPLICA_URL"], conn_max_age=conn_max_age,
        conn_health_checks=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", VAR_DIR / "static"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("P2W_MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    # Merchants' uploaded manifests and archives: outside MEDIA_ROOT, never served by a URL.
    "p2w_uploads": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ.get("P2W_UPLOADS_ROOT", str(VAR_DIR / "uploads"))},
    },
}
# Uploaded query images are read in memory up to this size; P2W_SEARCH["MAX_IMAGE_BYTES"] is the real limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024

REST_FRAMEWORK = {
    # How many reverse proxies stand in front of the web server: the client's address for the
    # anonymous search limit is the one they add to X-Forwarded-For. 0: the connection's own
    # address (a header a client sends itself is never trusted).
    "NUM_PROXIES": env_int("P2W_NUM_PROXIES", 0, minimum=0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # DRF's parsers, with a 400 that says why for JSON nested too deeply and a form over Django's limits.
    "DEFAULT_PARSER_CLASSES": [
        "p2w_search.api.parsers.JSONParser",
        "p2w_search.api.parsers.FormParser",
        "p2w_search.api.parsers.MultiPartParser",
    ],
    # A format no renderer has (?format=xml) is a 400 naming format, not DRF's bare 404 "Not found.".
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "p2w_search.api.negotiation.ContentNegotiation",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "p2w-search demo shop",
    "DESCRIPTION": "Composed product search (Pic2Word): search by text, by image, and 'like this, but ...'.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -----------------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL") or services.embedded_redis_url()
# The cache (throttling counts) is shared by all web processes through Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL.replace("redis+socket://", "unix://"),
        "KEY_PREFIX": "p2w-demo",
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
# A search waits for its query's result; with Redis down, the result store's default retries
# (20, a second apart) would hold it 20 s before the 503. Give up after about a second.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task of a worker that died unacknowledged goes back to the queue after this many seconds.
# Workers look for such tasks under a lock in Redis held for milliseconds; one killed while it held
# the lock leaves it until it expires (kombu's default 300 s, which would hold every redelivery back).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("P2W_VISIBILITY_TIMEOUT", 600, minimum=1),
    "unacked_mutex_expire": 30,
}
CELERY_BEAT_SCHEDULE = {
    "p2w-sweep-pending": {
        "task": "p2w_search.tasks.sweep_pending",
        "schedule": env_float("P2W_SWEEP_EVERY", 60.0, minimum=0, above=True),
        "options": {"queue": "p2w_bulk"},  # no worker consumes Celery's default queue
    },
    "p2w-cleanup-storage": {
        "task": "p2w_search.tasks.cleanup_storage",
        "schedule": 3600.0,
        "options": {"queue": "p2w_bulk"},
    },
    "p2w-sweep-orphan-files": {  # walks the images' folder: daily, not hourly
        "task": "p2w_search.tasks.sweep_orphan_files",
        "schedule": 86400.0,
        "options": {"queue": "p2w_bulk"},
    },
}

# --- p2w_search -------------------------------------------------------------------------------------
# Products in the demo catalog (manage.py demo's --size).
DEMO_SIZE = env_int("P2W_DEMO_SIZE", 1000, minimum=1)
DEMO_CLIP = "p2w-demo-small"
CLIP_MODEL = os.environ.get("P2W_CLIP_MODEL", DEMO_CLIP)
P2W_SEARCH_PRODUCT_MODEL = "catalog.Product"
# Anonymous searches per client address; set but empty: no limit.
anon_search_rate = env_match("P2W_ANON_SEARCH_RATE", "120/min", r"\d+/[smhd]\w*",
                             "a rate like '120/min' (searches per s, m, h or d), or empty for no limit")
if os.environ.get("P2W_ANON_SEARCH_RATE") == "":
    anon_search_rate = None
P2W_SEARCH = {
    "FILTER_FIELDS": ["category", "price", "in_stock", "merchant"],
    "PRODUCT_SERIALIZER": "shop_demo.catalog.serializers.ProductSerializer",
    "IMPORT_SERIALIZER": "shop_demo.catalog.imports.ProductImportSerializer",
    "SEARCH_FILTER": {"listed": True},
    "ANON_SEARCH_RATE": anon_search_rate,
    "EMBEDDERS": {
        "default": {
            "BACKEND": "p2w_search.embedders.openclip.OpenCLIPEmbedder",
            "MODEL": CLIP_MODEL,
            "MODEL_CONFIG": os.environ.get(
                "P2W_CLIP_MODEL_CONFIG", str(BASE_DIR / "shop_demo" / "clip" / "p2w-demo-small.json")
            ),
            "PRETRAINED": os.environ.get(
                "P2W_CLIP_PRETRAINED", str(BASE_DIR / "shop_demo" / "clip" / "weights" / "p2w-demo-small.pt")
            ),
            "MAPPING": os.environ.get(
                "P2W_MAPPING", str(BASE_DIR / "shop_demo" / "clip" / "weights" / "p2w-demo-small-mapping.pt")
            ),
            "DEVICE": env_match("P2W_DEVICE", "auto", r"[a-z_]+(:\d+)?",
                                "'auto' or a torch device such as 'cpu', 'cuda' or 'cuda:1'"),
            "BATCH_SIZE": env_int("P2W_BATCH_SIZE", 32, minimum=1),
            # The reference photo's weight in pic2word_plus_image belongs to the model: 0.5 was chosen
            # for the demo CLIP on its validation catalogs; another model starts at 0, the paper's pic2word.
            "IMAGE_WEIGHT": env_float("P2W_IMAGE_WEIGHT", 0.5 if CLIP_MODEL == DEMO_CLIP else 0.0, minimum=0,
                                      why=" (0 makes pic2word_plus_image the paper's pic2word)"),
        },
    },
    "SEARCH_DATABASE": "replica" if os.environ.get("DATABASE_REPLICA_URL") else "default",
    "QUERY_ENCODING": env_match("P2W_QUERY_ENCODING", "worker", "worker|local", "'worker' or 'local'"),
    "QUERY_TIMEOUT": env_float("P2W_QUERY_TIMEOUT", 10.0, minimum=0, above=True),
    "QUERY_BATCH_SIZE": env_int("P2W_QUERY_BATCH_SIZE", 8, minimum=1),
    "IMAGE_THREADS": env_int("P2W_IMAGE_THREADS", None, minimum=1),
    "SWEEP_AFTER": env_float("P2W_SWEEP_AFTER", 300.0, minimum=0, above=True),
}

log_level = env_match("P2W_LOG_LEVEL", "INFO", "(?i)" + "|".join(logging.getLevelNamesMapping()),
                      "DEBUG, INFO, WARNING, ERROR or CRITICAL").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"p2w_search": {"handlers": ["console"], "level": log_level}},
}

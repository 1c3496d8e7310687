"""Settings of the test shop: a Django project of its own with p2w_search added, as a shop would add it.

Nothing of the demo shop is installed. The database and Redis are the test run's
(``DATABASE_URL`` / ``REDIS_URL`` from ``bin/test``, or the embedded ones under
``P2W_VAR_DIR``); the CLIP is the tiny test one that tests/conftest.py writes. The test
database is ``test_p2w_testshop`` (the main session's is ``test_<its database>``), and the
queues carry a suffix of this session's own, which its worker processes inherit.
"""

import os
import time
from pathlib import Path

import dj_database_url

from shop_demo import services

QUEUE_SUFFIX = os.environ.setdefault("P2W_TESTSHOP_QUEUE_SUFFIX", f"-testshop-{os.getpid()}-{int(time.time())}")
TESTSHOP_DIR = Path(__file__).resolve().parent
VAR_DIR = services.var_dir()
TEST_MODELS = VAR_DIR / "test-models"
REDIS_URL = os.environ.get("REDIS_URL") or services.embedded_redis_url()

SECRET_KEY = "p2w-testshop-insecure-key"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "tests.testshop",
    "p2w_search",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.testshop.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

AUTH_USER_MODEL = "testshop.User"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES = {"default": {
    **dj_database_url.parse(os.environ.get("DATABASE_URL") or services.embedded_database_url()),
    # Apart from the main session's test_<name>, which runs at the same time (tests/test_testshop.py).
    "TEST": {"NAME": "test_p2w_testshop"},
}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
# From the environment too: a test gives its worker processes the folders it uses (the media fixture's).
MEDIA_ROOT = Path(os.environ.get("P2W_MEDIA_ROOT", VAR_DIR / "testshop-media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "p2w_uploads": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": os.environ.get("P2W_UPLOADS_ROOT", str(VAR_DIR / "testshop-uploads"))}},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

# Celery: the worker processes of the tests run ``celery -A shop_demo`` (a Celery app configured
# from whatever Django settings it is given) with DJANGO_SETTINGS_MODULE pointing here.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

P2W_SEARCH_PRODUCT_MODEL = "testshop.Product"
P2W_SEARCH = {
    "FILTER_FIELDS": [
        "brand",  # a foreign key to a model keyed by a string
        {"category": {"path": "categories", "descendants": True}},  # a tree, through a many-to-many
        {"price": "stockrecords__price"},  # numbers on a related model: price_min, price_max
        {"stock": "stockrecords__num_in_stock"},
    ],
    "SEARCH_FILTER": {"published": True},
    "PRODUCT_SERIALIZER": "tests.testshop.serializers.ProductSerializer",
    "PRODUCT_QUERYSET": "tests.testshop.serializers.prepare_products",
    "IMPORT_SERIALIZER": "tests.testshop.imports.ProductImportSerializer",
    "IMAGE_MODEL": {"MODEL": "testshop.ShopImage", "PRODUCT": "product", "FILE": "image", "ORDER": "position"},
    "EMBEDDERS": {
        "default": {
            "BACKEND": "p2w_search.embedders.openclip.OpenCLIPEmbedder",
            "MODEL": "p2w-test-tiny",
            "MODEL_CONFIG": str(TESTSHOP_DIR.parent / "clip" / "p2w-test-tiny.json"),
            "PRETRAINED": str(TEST_MODELS / "tiny-seed0.pt"),
            "MAPPING": str(TEST_MODELS / "tiny-seed0-mapping.pt"),
            "BATCH_SIZE": 8,
            "THREADS": 1,
        },
    },
    "QUERY_ENCODING": os.environ.get("P2W_QUERY_ENCODING", "local"),
    "QUERY_TIMEOUT": 20.0,
    "ANON_SEARCH_RATE": None,
    "BULK_QUEUE": f"p2w_bulk{QUEUE_SUFFIX}",
    "QUERY_QUEUE": f"p2w_query{QUEUE_SUFFIX}",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"p2w_search": {"handlers": ["console"], "level": "INFO"}},
}

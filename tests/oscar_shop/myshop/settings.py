"""Settings of an Oscar shop: Oscar's documented setup ("Building your own shop"), then p2w-search.

Everything above the line ``# ---- p2w-search`` is what any django-oscar 4.2 shop has
already; everything below it is what the shop adds to make its own products and images
searchable by picture and words. The README's "Add p2w-search to an existing shop" shows
that block and counts it (tests/oscar_shop/tests/test_glue.py keeps the count honest).
"""

import os
from pathlib import Path

import dj_database_url
from oscar.defaults import *

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "myshop-insecure-key")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.flatpages",
    "oscar.config.Shop",
    "oscar.apps.analytics.apps.AnalyticsConfig",
    "oscar.apps.checkout.apps.CheckoutConfig",
    "oscar.apps.address.apps.AddressConfig",
    "oscar.apps.shipping.apps.ShippingConfig",
    "oscar.apps.catalogue.apps.CatalogueConfig",
    "oscar.apps.catalogue.reviews.apps.CatalogueReviewsConfig",
    "oscar.apps.communication.apps.CommunicationConfig",
    "oscar.apps.partner.apps.PartnerConfig",
    "oscar.apps.basket.apps.BasketConfig",
    "oscar.apps.payment.apps.PaymentConfig",
    "oscar.apps.offer.apps.OfferConfig",
    "oscar.apps.order.apps.OrderConfig",
    "oscar.apps.customer.apps.CustomerConfig",
    "oscar.apps.search.apps.SearchConfig",
    "oscar.apps.voucher.apps.VoucherConfig",
    "oscar.apps.wishlists.apps.WishlistsConfig",
    "oscar.apps.dashboard.apps.DashboardConfig",
    "oscar.apps.dashboard.reports.apps.ReportsDashboardConfig",
    "oscar.apps.dashboard.users.apps.UsersDashboardConfig",
    "oscar.apps.dashboard.orders.apps.OrdersDashboardConfig",
    "oscar.apps.dashboard.catalogue.apps.CatalogueDashboardConfig",
    "oscar.apps.dashboard.offers.apps.OffersDashboardConfig",
    "oscar.apps.dashboard.partners.apps.PartnersDashboardConfig",
    "oscar.apps.dashboard.pages.apps.PagesDashboardConfig",
    "oscar.apps.dashboard.ranges.apps.RangesDashboardConfig",
    "oscar.apps.dashboard.reviews.apps.ReviewsDashboardConfig",
    "oscar.apps.dashboard.vouchers.apps.VouchersDashboardConfig",
    "oscar.apps.dashboard.communications.apps.CommunicationsDashboardConfig",
    "oscar.apps.dashboard.shipping.apps.ShippingDashboardConfig",
    "widget_tweaks",
    "haystack",
    "treebeard",
    "sorl.thumbnail",
    "django_tables2",
]
SITE_ID = 1

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "oscar.apps.basket.middleware.BasketMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "oscar.apps.customer.auth_backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "tests.oscar_shop.myshop.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.template.context_processors.i18n",
                "django.contrib.messages.context_processors.messages",
                "oscar.apps.search.context_processors.search_form",
                "oscar.apps.checkout.context_processors.checkout",
                "oscar.apps.communication.notifications.context_processors.notifications",
                "oscar.core.context_processors.metadata",
            ],
        },
    },
]

# Oscar recommends ATOMIC_REQUESTS: each request is one transaction.
DATABASES = {"default": {**dj_database_url.parse(os.environ["DATABASE_URL"]), "ATOMIC_REQUESTS": True}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
HAYSTACK_CONNECTIONS = {"default": {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"}}

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("MYSHOP_VAR", BASE_DIR / "var")) / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MYSHOP_VAR", BASE_DIR / "var")) / "media"

# ---- p2w-search ---------------------------------------------------------------------------------
INSTALLED_APPS += ["rest_framework", "django_filters", "p2w_search"]

# Celery (myshop/celery.py): embedding and query encoding run on workers. Beat runs the sweep, which
# re-queues lost work and syncs the shop's images; it goes to the bulk queue (no worker reads Celery's
# default one).
REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL  # a search waits for its query's encoding on a worker
CELERY_BEAT_SCHEDULE = {
    "p2w-sweep": {"task": "p2w_search.tasks.sweep_pending", "schedule": 60.0, "options": {"queue": "p2w_bulk"}},
}

P2W_SEARCH_PRODUCT_MODEL = "catalogue.Product"
P2W_SEARCH = {
    "IMAGE_MODEL": {"MODEL": "catalogue.ProductImage", "PRODUCT": "product", "FILE": "original",
                    "ORDER": "display_order"},
    "SEARCH_FILTER": {"is_public": True},
    "FILTER_FIELDS": [
        {"category": {"path": "categories", "descendants": True}},
        # A parent product's price and stock are its variants' (children's) stock records.
        {"price": ["stockrecords__price", "children__stockrecords__price"]},
        {"stock": ["stockrecords__num_in_stock", "children__stockrecords__num_in_stock"]},
    ],
    "PRODUCT_SERIALIZER": "tests.oscar_shop.myshop.serializers.ProductSerializer",
    "PRODUCT_QUERYSET": "tests.oscar_shop.myshop.serializers.prepare",
}

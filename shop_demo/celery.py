"""The demo shop's Celery app: settings from Django's CELERY_* settings, tasks from installed apps."""

import os
import sys

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_demo.settings")

app = Celery("shop_demo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_refused(**kwargs):
    """A value the settings refuse stops `celery -A shop_demo ...` with their one line, as manage.py does."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS
    except ImproperlyConfigured as exc:
        sys.exit(str(exc))

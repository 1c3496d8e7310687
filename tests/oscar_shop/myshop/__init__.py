"""The Oscar shop's project package; its Celery app is loaded with Django, as Celery documents."""

from .celery import app as celery_app

__all__ = ["celery_app"]

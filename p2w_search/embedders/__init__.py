"""Embedder backends chosen by alias in ``P2W_SEARCH["EMBEDDERS"]``, like Django's CACHES."""

import threading

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from p2w_search.conf import P2WImproperlyConfigured, app_settings
from p2w_search.embedders.base import BaseEmbedder, ModelIdentity

__all__ = ["BaseEmbedder", "ModelIdentity", "InvalidEmbedderError", "get_embedder"]

DEFAULT_ALIAS = "default"

_embedders = {}
_lock = threading.Lock()


class InvalidEmbedderError(P2WImproperlyConfigured):
    """An EMBEDDERS entry is missing or names a backend that cannot be imported."""


def get_embedder(alias=DEFAULT_ALIAS):
    """Return the process-wide embedder for ``alias`` (weights load on its first use)."""
    with _lock:
        if alias not in _embedders:
            _embedders[alias] = _create(alias)
        return _embedders[alias]


def _create(alias):
    config = app_settings.EMBEDDERS.get(alias)
    if config is None:
        raise InvalidEmbedderError(f"P2W_SEARCH['EMBEDDERS'] has no alias {alias!r}.")
    params = {key: value for key, value in config.items() if key != "BACKEND"}
    try:
        backend = import_string(config["BACKEND"])
    except (KeyError, ImportError) as exc:
        raise InvalidEmbedderError(
            f"P2W_SEARCH['EMBEDDERS'][{alias!r}]['BACKEND'] must be the dotted path of an embedder class: {exc}"
        ) from exc
    return backend(alias, params)


@receiver(setting_changed)
def _forget(*, setting, **kwargs):
    if setting == "P2W_SEARCH":
        with _lock:
            _embedders.clear()

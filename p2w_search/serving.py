"""Which embedding model serves searches: registering one, counting its progress, switching to it.

A model (``EmbeddingModel``) is one embedder's weights: the first of an empty index serves at
once, a later one is ``building`` while its vectors are made (``indexing``), then an admin
switches to it once it is complete. Searches read only the serving model's vectors.
"""

import logging

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from p2w_search import index
from p2w_search.conf import P2WImproperlyConfigured
from p2w_search.embedders import DEFAULT_ALIAS, get_embedder
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage

__all__ = [
    "CannotServe", "IncompleteModel", "ModelGone", "register_model", "active_models", "embedder_for",
    "model_progress", "switch_serving",
]

logger = logging.getLogger(__name__)


class CannotServe(Exception):
    """A switch to a model is refused; the message says why."""


class IncompleteModel(CannotServe):
    """A model cannot serve yet: some images are still pending under it."""


class ModelGone(CannotServe):
    """The model was deleted before the switch took it."""


def register_model(alias=DEFAULT_ALIAS):
    """Return the EmbeddingModel of the embedder ``alias``, creating it (and its index) if new.

    Loads the embedder's weights. The first model of an empty index serves at once;
    later ones are ``building`` until ``switch_serving``.
    """
    identity = get_embedder(alias).identity
    with transaction.atomic():
        model, created = EmbeddingModel.objects.select_for_update().get_or_create(
            architecture=identity.architecture,
            weights=identity.weights,
            checksum=identity.checksum,
            defaults={"alias": alias, "dimensions": identity.dimensions},
        )
        if model.state == EmbeddingModel.State.RETIRED:
            model.state = EmbeddingModel.State.BUILDING
            model.save(update_fields=["state"])
        if not EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).exists():
            model.state = EmbeddingModel.State.SERVING
            model.serving_since = timezone.now()
            model.save(update_fields=["state", "serving_since"])
    index.ensure_hnsw_index(model)
    if created:
        logger.info("registered embedding model %s (%d dimensions)", model.key, model.dimensions)
    return model


def active_models():
    """Models that new images are embedded with: the serving one and any being built."""
    return EmbeddingModel.objects.filter(
        state__in=[EmbeddingModel.State.SERVING, EmbeddingModel.State.BUILDING]
    )


def embedder_for(model):
    """Return the embedder that made ``model``'s vectors, checking it still loads the same weights."""
    embedder = get_embedder(model.alias)
    identity = embedder.identity
    if (identity.architecture, identity.weights, identity.checksum) != (
            model.architecture, model.weights, model.checksum):
        raise P2WImproperlyConfigured(
            f"P2W_SEARCH['EMBEDDERS'][{model.alias!r}] now loads "
            f"{identity.architecture}/{identity.weights} (sha256 {identity.checksum[:12] or '-'}), but the "
            f"index holds vectors of {model.key}. Register the new weights under a new alias and switch to it."
        )
    return embedder


def model_progress(model):
    """Counts of the images in the index under ``model``: ``total``, ``ready``, ``failed``, ``pending``, ``missing``.

    The one count every progress display uses (admin page, ``p2w_index status``/``wait``,
    the switch, import jobs): images an admin removed from the index are not in it.
    """
    in_index = ProductImage.objects.filter(in_index=True)
    total = in_index.count()
    counts = dict(
        ImageEmbedding.objects.filter(model=model, image__in_index=True)
        .values_list("state").annotate(n=Count("id")).order_by()
    )
    ready, failed, pending = (counts.get(state, 0) for state in ("ready", "failed", "pending"))
    return {"total": total, "ready": ready, "failed": failed, "pending": pending,
            "missing": max(total - ready - failed - pending, 0)}


def switch_serving(model, *, force=False):
    """Make ``model`` serve searches, retiring the one that served before.

    Refuses while images are still pending under ``model``, or when none of them could be embedded (every
    search would find nothing), unless ``force``.
    """
    progress = model_progress(model)
    pending, missing = progress["pending"], progress["missing"]
    if (pending or missing) and not force:
        raise IncompleteModel(
            f"{model.key} is not complete: {pending} images pending and {missing} not queued; "
            "wait for the workers (or force the switch)."
        )
    if progress["total"] and not progress["ready"] and not force:
        raise IncompleteModel(
            f"{model.key} has no image embedded: all {progress['failed']} failed, so every search would find "
            "nothing. The index page lists the errors (or force the switch)."
        )
    with transaction.atomic():
        # One switch at a time: two at once (to two models, from two admin pages) each retired the model that served
        # when it looked, and the second broke the one-serving-model constraint (a 500). Few rows: all are locked, in
        # order; NO KEY, as an import's new embedding rows hold a KEY SHARE lock on their model until it commits.
        locked = list(EmbeddingModel.objects.select_for_update(no_key=True).order_by("pk").values_list("pk", flat=True))
        if model.pk not in locked:  # deleted since it was read (the admin's delete, a moment before)
            raise ModelGone(f"{model.key} was deleted meanwhile; nothing was switched.")
        EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).exclude(pk=model.pk).update(
            state=EmbeddingModel.State.RETIRED
        )
        model.state = EmbeddingModel.State.SERVING
        model.serving_since = timezone.now()
        model.save(update_fields=["state", "serving_since"])
    return model

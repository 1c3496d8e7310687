"""One search service: the REST API, the demo storefront and a host shop's own views all call it.

Four searches: ``text``, ``image`` (an uploaded photo or a catalog image), ``similar``
("more like this product") and ``composed`` ("like this, but ..."). Each ranks the
products shoppers may see (``visible_products``: the shop's product model with
``P2W_SEARCH["SEARCH_FILTER"]``), within the ``products`` a caller passes (its filters),
and returns ``Results``. One rule picks a product's reference image (``reference_image``),
and one budget counts anonymous searches (``search_budget``), whichever door a search
comes through. What a shopper can get wrong raises ``Rejected`` (a 400, with the field);
what cannot run now raises ``Unavailable`` (a 503).

    from p2w_search import search

    results = search.composed(text="in red", product=product, products=my_filtered_queryset, k=12)
    for product, image, score in results.products():
        ...
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.apps import apps
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import models
from django.utils.module_loading import import_string

from p2w_search import encoding, index
from p2w_search.composition import DEFAULT_METHOD, NO_WORDS_IN_TEXT, check_change, has_words
from p2w_search.conf import app_settings, product_model_label
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from p2w_search.request_values import whole_number

__all__ = [
    "SearchError", "Rejected", "Unavailable", "TooManySearches", "Results", "product_model", "search_database",
    "visible_products",
    "product_queryset", "parse_product_id", "reference_image", "text", "image", "similar", "composed",
    "search_budget", "RETRY_AFTER_SECONDS",
]

RETRY_AFTER_SECONDS = 30  # a search that cannot run now (no worker yet, a storage that fails) is worth trying again


class SearchError(Exception):
    """A search that cannot be answered; ``status`` is the HTTP status it is answered with."""

    status = 400
    retry_after = None  # seconds to wait before trying again (a response's Retry-After); None: not worth waiting

    def __init__(self, reason, *, field=None, code=None):
        super().__init__(reason)
        self.reason, self.field, self.code = reason, field, code


class Rejected(SearchError):
    """The search's input cannot be used (400); ``field`` names the part (``q``, ``text``, ``product`` ...)."""


class Unavailable(SearchError):
    """The search cannot run now (503); ``code`` says what the client does next:

    - "not_ready": no model serves yet (the catalog is being indexed): try again much later;
    - "busy": no worker answered in time, or the queue cannot be reached: try again in a moment;
    - "model_changed": the model the search began with was deleted meanwhile (``encoding.MODEL_GONE``): search
      again now, under the model that serves now.
    """

    status = 503

    @property
    def retry_after(self):
        return None if self.code == "model_changed" else RETRY_AFTER_SECONDS


class TooManySearches(SearchError):
    """An anonymous client spent its budget (429); the message and ``retry_after`` say how long to wait."""

    status = 429

    def __init__(self, reason, *, retry_after):
        super().__init__(reason)
        self.retry_after = retry_after


def product_model():
    return apps.get_model(product_model_label())


def search_database():
    """The database searches read (``P2W_SEARCH["SEARCH_DATABASE"]``: a streaming replica, or the primary)."""
    return app_settings.SEARCH_DATABASE


def visible_products():
    """The products shoppers may see: the product model's default manager, ``SEARCH_FILTER`` applied."""
    return product_model()._default_manager.using(search_database()).filter(**app_settings.SEARCH_FILTER)


def product_queryset(queryset):
    """``queryset`` prepared for showing results: ``P2W_SEARCH["PRODUCT_QUERYSET"]``'s select/prefetch.

    That setting names a callable that takes a QuerySet of products and returns it with what
    the shop's serializer or template reads (``select_related``, ``prefetch_related``), so a
    page of results costs the same number of queries whatever its length.
    """
    path = app_settings.PRODUCT_QUERYSET
    if path:
        return import_string(path)(queryset) if isinstance(path, str) else path(queryset)
    return queryset.select_related()


def parse_product_id(value, *, field_name="product"):
    """A product's primary key from a request's text, typed as the product model's key (int, UUID, text ...).

    A key of integers (an AutoField, or a relation to one) is read as the client wrote it
    (``whole_number``): the model field's ``to_python()`` is ``int()``, which reads ``1_0`` as 10
    and ``٥`` as 5, another product than the one asked for.
    """
    key = product_model()._meta.pk
    try:
        if isinstance(getattr(key, "target_field", key), models.IntegerField):
            return whole_number(value, signed=True)
        return key.to_python(value)
    except (ValidationError, TypeError, ValueError):
        raise Rejected(f"{str(value)!r} is not a product id.", field=field_name) from None


@dataclass
class Results:
    """The ranked hits of a search under ``model``, and where its time went (ms)."""

    model: EmbeddingModel
    hits: list
    timings: dict = field(default_factory=dict)

    def products(self, hits=None, *, queryset=None):
        """``[(product, image, score)]`` of ``hits`` (default: all), in two queries (plus the queryset hook's).

        A product or image deleted or hidden since the ranking is left out.
        """
        hits = self.hits if hits is None else hits
        products = product_queryset(queryset if queryset is not None else visible_products())
        found = products.in_bulk([hit.product_id for hit in hits])
        images = ProductImage.objects.using(search_database()).in_bulk([hit.image_id for hit in hits])
        return [(found[hit.product_id], images[hit.image_id], hit.score) for hit in hits
                if hit.product_id in found and hit.image_id in images]


def serving_model():
    try:
        return index.serving_model(using=search_database())
    except index.IndexNotReady as exc:
        raise Unavailable(str(exc), code="not_ready") from None


def reference_image(product, model, *, field_name="product"):
    """The image a product is searched by: its first image (by position) with a vector under ``model``.

    The one rule for "more like this" and "like this, but ...", in the API, the storefront
    and a host shop's pages. Raises Rejected while none of its images is embedded.
    """
    image = (ProductImage.objects.using(search_database()).filter(
                 product=product, in_index=True, embeddings__model=model,
                                         embeddings__state=ImageEmbedding.State.READY)
             .order_by("position", "pk").first())
    if image is None:
        _no_images(ProductImage.objects.using(search_database()).filter(product=product, in_index=True), field_name)
        _unless_gone(model)
        raise Rejected("Its images are not embedded yet; try again once indexing is done.", field=field_name,
                       code="not_embedded")
    return image


NO_IMAGES = "This product has no image in the search index, so there is nothing to search by."


def _no_images(images, field_name):
    """Rejected (code "no_images") when ``images`` (a product's, in the index) is empty: no image, or all taken
    out of search. Waiting for indexing would not help, so it is not said to be "not embedded yet"."""
    if not images.exists():
        raise Rejected(NO_IMAGES, field=field_name, code="no_images")


def _in_index(image, field_name):
    if not image.in_index:
        raise Rejected(f"Product image {image.pk} is not in the search index (it was taken out of search), so "
                       "there is nothing to search by.", field=field_name, code="no_images")


def _visible(product, field_name, missing=None):
    """``product`` (an instance or a key) if shoppers may see it, else Rejected (``missing``, or that there
    is no such product: an image's refusal must not name the hidden product it belongs to)."""
    pk = getattr(product, "pk", product)
    found = visible_products().filter(pk=pk).first()
    if found is None:
        raise Rejected(missing or f"There is no product with id {pk}.", field=field_name, code="not_visible")
    return found


def text(q, *, products=None, k=None, exclude=(), timings=None):
    """Products whose images match the text ``q``."""
    if not has_words(q):
        raise Rejected(NO_WORDS_IN_TEXT, field="q")
    model = serving_model()
    timings = {} if timings is None else timings
    vector = _encode(model, encoding.TEXT, q, timings, field_name="q")
    return _rank(model, vector, products=products, k=k, exclude=exclude, timings=timings)


def image(data=None, *, image_id=None, products=None, k=None, exclude=(), timings=None):
    """Products that look like an uploaded photo (``data``, bytes checked by the caller) or a catalog image."""
    model = serving_model()
    timings = {} if timings is None else timings
    if image_id is None:
        vector = _encode(model, encoding.IMAGE, data, timings, field_name="image")
        return _rank(model, vector, products=products, k=k, exclude=exclude, timings=timings)
    catalog_image = ProductImage.objects.using(search_database()).filter(pk=image_id).first()
    if catalog_image is None:
        raise Rejected(f"There is no product image with id {image_id}.", field="image_id")
    _visible(catalog_image.product_id, "image_id", f"There is no product image with id {image_id}.")
    _in_index(catalog_image, "image_id")
    with _timed(timings, "encode"):
        vector = _stored(model, ProductImage.objects.using(search_database()).filter(pk=image_id), "image_id")
    return _rank(model, vector, products=products, k=k, exclude=[*exclude, catalog_image.product_id],
                 timings=timings)


def similar(product, *, products=None, k=None, exclude=(), timings=None):
    """"More like this": products close to ``product``'s images, the product left out."""
    model = serving_model()
    timings = {} if timings is None else timings
    product = _visible(product, "product")
    with _timed(timings, "encode"):
        vector = _stored(model, ProductImage.objects.using(search_database()).filter(product=product, in_index=True),
                         "product")
    return _rank(model, vector, products=products, k=k, exclude=[*exclude, product.pk], timings=timings)


def composed(*, text, product=None, image_id=None, image=None, method=DEFAULT_METHOD, prompt=None,
             products=None, k=None, exclude=(), timings=None):
    """"Like this, but ``text``": a reference (a product, a catalog image or a photo's bytes) and a change in words.

    ``method`` is one of composition.METHODS; ``prompt`` names a template of
    ``P2W_SEARCH["PROMPTS"]`` (default ``PROMPT``). The reference product is left out.
    """
    given = [name for name, value in (("product", product), ("image_id", image_id), ("image", image))
             if value is not None]
    if len(given) != 1:
        raise Rejected("Send exactly one reference: 'product', 'image_id' or 'image' (an uploaded file).",
                       field="product")
    try:
        check_change(text)
    except ValueError as exc:
        raise Rejected(str(exc), field="text") from None
    if prompt is not None and prompt not in app_settings.PROMPTS:
        raise Rejected(f"Unknown prompt; choose one of: {', '.join(app_settings.PROMPTS)}.", field="prompt")
    model = serving_model()
    timings = {} if timings is None else timings
    payload = {"text": text, "method": method, "template": app_settings.PROMPTS[prompt] if prompt else None}
    if image is not None:
        payload["image"] = image
    else:
        if product is not None:
            reference = reference_image(_visible(product, "product"), model)
        else:
            reference = ProductImage.objects.using(search_database()).filter(pk=image_id).first()
            if reference is None:
                raise Rejected(f"There is no product image with id {image_id}.", field="image_id")
            _visible(reference.product_id, "image_id", f"There is no product image with id {image_id}.")
            _in_index(reference, "image_id")
            if not reference.embeddings.filter(model=model, state=ImageEmbedding.State.READY).exists():
                _unless_gone(model)
                raise Rejected("Its image is not embedded yet; try again once indexing is done.", field="image_id")
        payload["image_id"] = reference.pk
        exclude = [*exclude, reference.product_id]  # the reference is not an answer to "like this, but ..."
    vector = _encode(model, encoding.COMPOSED, payload, timings, field_name="text")
    return _rank(model, vector, products=products, k=k, exclude=exclude, timings=timings)


def _encode(model, kind, payload, timings, *, field_name):
    try:
        return encoding.encode_query(model, kind, payload, timings=timings)
    except encoding.ModelGone:
        raise _model_changed() from None
    except encoding.QueryEncoderUnavailable as exc:
        raise Unavailable(str(exc), code="busy") from None
    except encoding.QueryRejected as exc:
        _unless_gone(model)  # a composed query's reference had no vector: the model may have gone with it
        raise Rejected(exc.reason, field=exc.field or field_name) from None


def _stored(model, images, field_name):
    try:
        return index.stored_query_vector(model, images, using=search_database())
    except index.NotEmbedded:
        _no_images(images, field_name)
        _unless_gone(model)
        raise Rejected("Its images are not embedded yet; try again once indexing is done.", field=field_name,
                       code="not_embedded") from None


def _rank(model, vector, *, products, k, exclude, timings):
    """Rank under ``model`` only; fewer than ``k`` hits because the model was deleted meanwhile is Unavailable."""
    shown = visible_products()
    if products is not None:
        shown = shown.filter(pk__in=products.values("pk"))
    k = k or app_settings.DEFAULT_K
    with _timed(timings, "sql"):
        try:
            hits = index.nearest_products(model, vector, k=k, products=shown, exclude_product_ids=exclude,
                                          using=search_database())
        except EmptyResultSet:  # ``products`` can match nothing (``none()``, ``pk__in=[]``): no hits, not a 500
            hits = []
        if len(hits) < k:  # k hits were ranked in one statement, under the model: only a short list may be cut
            _unless_gone(model)
    return Results(model=model, hits=hits, timings=timings)


def _unless_gone(model):
    """Raise Unavailable (503, "model_changed") when ``model`` was deleted since the search read it as serving.

    An admin switches to another model and deletes the old one ("switch first, then delete"): its vectors go
    with it, so a search still under it found no vector, and said "no results" or "not embedded yet" (false).
    A model switched but kept still has its vectors and answers the search that began with it.
    """
    if not EmbeddingModel.objects.using(search_database()).filter(pk=model.pk).exists():
        raise _model_changed()


def _model_changed():
    """The 503 of a search whose model was deleted meanwhile: not "busy", since the next search works at once."""
    return Unavailable(encoding.MODEL_GONE, code="model_changed")


@contextmanager
def _timed(timings, name):
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - started) * 1000


@contextmanager
def search_budget(request):
    """Run a search that encodes a query within the anonymous budget of ``request``'s client.

    The API, the storefront and a host shop's pages share one budget per address. Raises
    TooManySearches when it is spent; a search refused for its input (Rejected) costs
    nothing, one that ran or found no worker is counted.
    """
    import math

    from p2w_search.throttling import AnonSearchThrottle

    throttle = AnonSearchThrottle()
    if not throttle.allow_request(request, None):
        wait = math.ceil(throttle.wait() or 1)
        raise TooManySearches(f"Too many searches from your address; try again in {wait} s.", retry_after=wait)
    try:
        yield
    except Rejected:
        raise
    except BaseException:
        throttle.spend(request)
        raise
    throttle.spend(request)

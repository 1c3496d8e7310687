"""The storefront's searches: thin calls into p2w_search that return product cards.

Every search ranks the shop's visible products only (``products=`` of ``index.nearest_products``), so a
filter or an unlisted product never leaves the grid short of ``k`` results.
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass

from p2w_search import index, queries
from p2w_search.throttling import AnonSearchThrottle
from p2w_search.conf import app_settings
from p2w_search.models import ImageEmbedding, ProductImage
from shop_demo.catalog.models import Product

__all__ = [
    "Card",
    "SearchUnavailable",
    "TooManySearches",
    "search_budget",
    "shop_products",
    "categories",
    "browse_cards",
    "text_search",
    "photo_search",
    "similar_products",
    "changed_products",
]


@dataclass(frozen=True)
class Card:
    """One product in a grid, with the image to show (the best match when it was searched)."""

    product: Product
    image: ProductImage | None
    score: float | None = None


class SearchUnavailable(Exception):
    """The search cannot run right now (no serving model, no worker, not indexed yet); the message says why."""


class TooManySearches(Exception):
    """An anonymous shopper searched more often than ``ANON_SEARCH_RATE`` allows; the message says how long to wait."""


@contextmanager
def search_budget(request):
    """Run a search that encodes a query within the API's anonymous budget, one budget per address.

    The pages call the encoder as the API does, so they share its limit: raises
    TooManySearches when it is spent. A search refused for its input (QueryRejected) is
    not counted; one that ran or found no worker is.
    """
    throttle = AnonSearchThrottle()
    if not throttle.allow_request(request, None):
        raise TooManySearches(f"Too many searches from your address; try again in {math.ceil(throttle.wait() or 1)} s.")
    try:
        yield
    except queries.QueryRejected:
        raise
    except BaseException:
        throttle.spend(request)
        raise
    throttle.spend(request)


def shop_products():
    """Return the products shoppers may see: those that pass ``P2W_SEARCH["SEARCH_FILTER"]``, as the API's."""
    return Product._default_manager.filter(**app_settings.SEARCH_FILTER)


def categories():
    """Return the distinct categories of the visible products, sorted."""
    return list(shop_products().order_by("category").values_list("category", flat=True).distinct())


def browse_cards(products):
    """Return cards for ``products`` (an iterable of products), each shown with its first image."""
    products = list(products)
    first = {}
    for image in ProductImage.objects.filter(product__in=[p.pk for p in products]).order_by("position", "pk"):
        first.setdefault(image.product_id, image)
    return [Card(product=product, image=first.get(product.pk)) for product in products]


def text_search(text, *, products, k):
    """Return the cards of the ``k`` products that best match ``text``."""
    model = _serving_model()
    return _ranked(model, _encode(model, queries.TEXT, text), products=products, k=k)


def photo_search(data, *, products, k):
    """Return the cards of the ``k`` products that look most like a photo (bytes already checked by load_image)."""
    model = _serving_model()
    return _ranked(model, _encode(model, queries.IMAGE, data), products=products, k=k)


def similar_products(product, *, products, k):
    """Return "more like this": the ``k`` products closest to ``product``'s images, the product left out."""
    model = _serving_model()
    try:
        vector = index.stored_query_vector(model, ProductImage.objects.filter(product=product))
    except index.NotEmbedded:
        raise SearchUnavailable("This product is not in the search index yet; try again once indexing is done.")
    return _ranked(model, vector, products=products, k=k, exclude=[product.pk])


def changed_products(product, text, *, method, products, k):
    """Return "like this, but <text>": a composed search from ``product``'s first indexed image, the product left out.

    Raises queries.QueryRejected when the text cannot be encoded (e.g. too long for the model).
    """
    model = _serving_model()
    reference = (
        ProductImage.objects.filter(
            product=product, embeddings__model=model, embeddings__state=ImageEmbedding.State.READY
        ).order_by("position", "pk").first()
    )
    if reference is None:
        raise SearchUnavailable("This product is not in the search index yet; try again once indexing is done.")
    payload = {"text": text, "method": method, "template": None, "image_id": reference.pk}
    vector = _encode(model, queries.COMPOSED, payload)
    return _ranked(model, vector, products=products, k=k, exclude=[product.pk])


def _serving_model():
    try:
        return index.serving_model()
    except index.IndexNotReady:
        raise SearchUnavailable(
            "Search is not ready yet: the catalog is still being indexed. Browse the products meanwhile."
        ) from None


def _encode(model, kind, payload):
    try:
        return queries.encode_query(model, kind, payload)
    except queries.QueryEncoderUnavailable as exc:
        raise SearchUnavailable(f"Search is busy right now. {exc}") from None


def _ranked(model, vector, *, products, k, exclude=()):
    hits = index.nearest_products(model, vector, k=k, products=products, exclude_product_ids=exclude)
    found = shop_products().in_bulk([hit.product_id for hit in hits])
    images = ProductImage.objects.in_bulk([hit.image_id for hit in hits])
    return [
        Card(product=found[hit.product_id], image=images[hit.image_id], score=hit.score)
        for hit in hits
        if hit.product_id in found and hit.image_id in images  # deleted or hidden since the ranking
    ]

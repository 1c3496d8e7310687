"""The storefront's searches: thin calls into p2w_search's search service that return product cards.

Every search ranks the shop's visible products only, within the page's filters, so a filter
or an unlisted product never leaves the grid short of ``k`` results.
"""

from dataclasses import dataclass

from p2w_search import search as service
from p2w_search.models import ProductImage
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
    "shopper_message",
]


@dataclass(frozen=True)
class Card:
    """One product in a grid, with the image to show (the best match when it was searched)."""

    product: Product
    image: ProductImage | None
    score: float | None = None


SearchUnavailable = service.Unavailable
TooManySearches = service.TooManySearches
search_budget = service.search_budget


def shop_products():
    """Return the products shoppers may see (the search service's rule, ``SEARCH_FILTER``)."""
    return service.visible_products()


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
    return _cards(service.text(text, products=products, k=k))


def photo_search(data, *, products, k):
    """Return the cards of the ``k`` products that look most like a photo (bytes already checked by load_image)."""
    return _cards(service.image(data, products=products, k=k))


def similar_products(product, *, products, k):
    """Return "more like this": the ``k`` products closest to ``product``'s images, the product left out."""
    return _cards(service.similar(product, products=products, k=k))


def changed_products(product, text, *, method, products, k):
    """Return "like this, but <text>": a composed search from ``product``'s reference image, the product left out.

    Raises service.Rejected when the text cannot be used (e.g. too long for the model).
    """
    return _cards(service.composed(text=text, product=product, method=method, products=products, k=k))


def _cards(results):
    return [Card(product=product, image=image, score=score) for product, image, score in results.products()]


def shopper_message(unavailable):
    """What the page says when a search cannot run now (service.Unavailable), in a shopper's words."""
    if unavailable.code == "not_ready":
        return "Search is not ready yet: the catalog is still being indexed. Browse the products meanwhile."
    return f"Search is busy right now. {unavailable.reason}"

"""The storefront's searches: thin calls into p2w_search's search service and shopper journey.

Every search ranks the shop's visible products only, within the page's filters, so a filter
or an unlisted product never leaves the grid short. "Like this, but ..." (a product, the
shopper's photo, the shopper's words, refined again) is p2w_search.shopper.journey's, the
same journey a host shop gets from the app's template tags.
"""

from p2w_search import search as service
from p2w_search.models import ProductImage
from p2w_search.shopper.journey import Card, shopper_message

__all__ = ["Card", "SearchUnavailable", "shop_products", "categories", "browse_cards", "similar_products",
           "shopper_message"]

SearchUnavailable = service.Unavailable


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


def similar_products(product, *, products, k):
    """Return "more like this": the ``k`` products closest to ``product``'s images, the product left out, and the
    model that ranked them (the page's footer names it: an admin may switch the serving one meanwhile)."""
    results = service.similar(product, products=products, k=k)
    return [Card(product=p, image=image, score=score) for p, image, score in results.products()], results.model

"""A merchant's catalog at a glance: products listed and unlisted, embedded, waiting and failed.

It needs the import serializer's optional ``products(merchant)`` (the merchant's products,
a QuerySet of the shop's product model); without it the pages leave the section out.
Embedding states are those under the serving model, of the images that are in the index.
"""

from django.db.models import Count, F, Q, QuerySet

from p2w_search import indexing, serving
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from p2w_search.uploads.importer import import_serializer

__all__ = ["merchant_products", "glance", "failed_images", "embed_failed_again"]


def merchant_products(merchant):
    """The merchant's products (a QuerySet), or None when the import serializer has no ``products``."""
    products = getattr(import_serializer(), "products", None)
    return products(merchant) if products is not None else None


def glance(merchant):
    """``{"products", "listed", "unlisted", "embedded", "waiting", "failed", "without_images"}``, or None.

    A product is embedded when every image of it in the index has a vector, failed when one
    of them failed, and waiting otherwise; products without an image are counted apart.
    """
    products = merchant_products(merchant)
    if products is None:
        return None
    listed = import_serializer().listed_skus(merchant)
    listed = listed.count() if isinstance(listed, QuerySet) else len(list(listed))
    serving = EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).first()
    in_index = Q(p2w_images__in_index=True)
    under = Q(p2w_images__embeddings__model=serving)

    def images(condition):
        return Count("p2w_images", filter=condition, distinct=True)

    counts = products.order_by().annotate(
        n_images=images(in_index),
        n_ready=images(in_index & under & Q(p2w_images__embeddings__state=ImageEmbedding.State.READY)),
        n_failed=images(in_index & under & Q(p2w_images__embeddings__state=ImageEmbedding.State.FAILED)),
    ).aggregate(
        products=Count("pk"),
        without_images=Count("pk", filter=Q(n_images=0)),
        embedded=Count("pk", filter=Q(n_images__gt=0, n_ready=F("n_images"))),
        failed=Count("pk", filter=Q(n_failed__gt=0)),
    )
    if serving is None:
        counts["embedded"] = counts["failed"] = 0
    counts["waiting"] = counts["products"] - counts["without_images"] - counts["embedded"] - counts["failed"]
    counts["listed"], counts["unlisted"] = listed, counts["products"] - listed
    return counts


def failed_images(merchant):
    """The merchant's images in the index whose embedding failed under an active model (a QuerySet)."""
    products = merchant_products(merchant)
    if products is None:
        return ProductImage.objects.none()
    return ProductImage.objects.filter(
        product__in=products, in_index=True, embeddings__state=ImageEmbedding.State.FAILED,
        embeddings__model__in=serving.active_models(),
    ).distinct()


def embed_failed_again(merchant):
    """Queue the merchant's failed embeddings again (indexing.retry_failed); return how many."""
    return indexing.retry_failed(failed_images(merchant))

"""What the management commands share: picking the embedding model a command works on."""

from django.core.management.base import CommandError

from p2w_search.models import EmbeddingModel

__all__ = ["chosen_model"]


def chosen_model(pk=None):
    """Return the EmbeddingModel ``pk``, or the serving model without one; CommandError if there is none."""
    models = EmbeddingModel.objects.all()
    found = models.filter(pk=pk).first() if pk else models.filter(state=EmbeddingModel.State.SERVING).first()
    if found is None:
        raise CommandError(f"no embedding model {pk}" if pk else
                           "no model serves yet; embed the catalog first (manage.py p2w_index embed)")
    return found

"""The contract every embedder backend fulfils."""

import math
from dataclasses import dataclass

__all__ = ["ModelIdentity", "BaseEmbedder", "DEFAULT_IMAGE_WEIGHT", "image_weight"]

# The reference photo's weight in ``pic2word_plus_image`` belongs to the model (its photo and
# text cosines spread differently): 0 makes the method the paper's pic2word, for a model nobody
# measured; the demo sets 0.5 for its CLIP, chosen on its validation catalogs (docs/evaluation/levers.md).
DEFAULT_IMAGE_WEIGHT = 0.0


def image_weight(alias, params):
    """Return the ``IMAGE_WEIGHT`` of an EMBEDDERS entry, or raise ValueError naming it."""
    value = params.get("IMAGE_WEIGHT", DEFAULT_IMAGE_WEIGHT)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"P2W_SEARCH['EMBEDDERS'][{alias!r}]['IMAGE_WEIGHT'] must be a number of at least 0 "
                         f"(0 makes pic2word_plus_image the paper's pic2word), not {value!r}.")
    return float(value)


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two vectors comparable: the same architecture, weights and dimension."""

    architecture: str
    weights: str
    checksum: str
    dimensions: int


class BaseEmbedder:
    """Turns images and texts into L2-normalised vectors of one model.

    Backends load their weights lazily, on first use, once per process.
    """

    def __init__(self, alias, params):
        self.alias = alias
        self.params = params

    @property
    def image_weight(self):
        """The reference photo's weight in the ``pic2word_plus_image`` query (``IMAGE_WEIGHT``)."""
        return image_weight(self.alias, self.params)

    @property
    def identity(self):
        """Return the ModelIdentity of the loaded model."""
        raise NotImplementedError("BaseEmbedder.identity")

    def embed_images(self, images, *, normalize=True):
        """Return a float32 array [len(images), dimensions] of image vectors for PIL images.

        ``normalize=False`` returns the raw features, which the Pic2Word mapping reads.
        """
        raise NotImplementedError("BaseEmbedder.embed_images")

    def embed_texts(self, texts, *, normalize=True):
        """Return a float32 array [len(texts), dimensions] of text vectors."""
        raise NotImplementedError("BaseEmbedder.embed_texts")

    @property
    def context_length(self):
        """Return the most tokens a text may have, start and end tokens included."""
        raise NotImplementedError("BaseEmbedder.context_length")

    def count_tokens(self, text):
        """Return the number of tokens of ``text``, start and end tokens included, without truncating it."""
        raise NotImplementedError("BaseEmbedder.count_tokens")

    def compose(self, image_features, texts, *, template):
        """Return normalised Pic2Word queries [n, dimensions] for raw image features and texts.

        ``template`` holds ``*`` (the image's pseudo word) and ``{text}``.
        """
        raise NotImplementedError("BaseEmbedder.compose")

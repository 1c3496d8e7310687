"""The contract every embedder backend fulfils."""

from dataclasses import dataclass

__all__ = ["ModelIdentity", "BaseEmbedder"]


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

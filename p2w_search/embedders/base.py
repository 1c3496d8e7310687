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

    def embed_images(self, images):
        """Return a float32 array [len(images), dimensions] of normalised image vectors for PIL images."""
        raise NotImplementedError("BaseEmbedder.embed_images")

    def embed_texts(self, texts):
        """Return a float32 array [len(texts), dimensions] of normalised text vectors."""
        raise NotImplementedError("BaseEmbedder.embed_texts")

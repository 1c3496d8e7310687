"""Composed queries: a reference image plus a modification text, by the paper's methods.

``pic2word`` (Saito et al., CVPR 2023) turns the reference into a pseudo word ``*`` and
encodes a sentence such as "a photo of * , in red". The paper's baselines are here too,
so anyone can compare: ``image_only`` (the reference's embedding), ``text_only`` (the
modification text's) and ``image_plus_text`` (the sum of both, normalised). Two are ours,
not the paper's: ``pic2word_plus_image``, the pic2word query plus the reference's own embedding
times the embedder's ``IMAGE_WEIGHT``, normalised (the default: it puts the right product first
more often on the demo's validation catalogs; README, "How well it works"), and ``fusion``, the
normalised sum of the pic2word and image_plus_text queries.
"""

import numpy as np

from p2w_search.conf import app_settings

__all__ = [
    "METHODS", "DEFAULT_METHOD", "PROMPTED", "composed_queries", "plus_image", "prompt_template", "normalise",
    "check_change",
]

METHODS = ("pic2word_plus_image", "pic2word", "image_only", "text_only", "image_plus_text", "fusion")
DEFAULT_METHOD = "pic2word_plus_image"
PROMPTED = ("pic2word_plus_image", "pic2word", "fusion")  # the methods that use a prompt template


def normalise(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def check_change(text):
    """Raise ValueError, in the shopper's terms, for a change that cannot be composed as written.

    The prompt's ``*`` is the reference image's pseudo word; a ``*`` of the shopper's would
    be a second one, so it is refused with a message that says what to write instead.
    """
    if "*" in text:
        raise ValueError("Write the change in words, without '*' (for '5 * hotel style', write '5 star hotel "
                         "style').")


def plus_image(pic2word, image_features, weight):
    """``pic2word_plus_image`` from ``pic2word`` queries [n, dim]: plus ``weight`` times each reference's unit
    embedding (``image_features``, raw [n, dim]), normalised. Weight 0 is ``pic2word`` itself."""
    return normalise(pic2word + weight * normalise(image_features))


def prompt_template(name=None):
    """Return the template called ``name`` in ``P2W_SEARCH["PROMPTS"]`` (default ``"PROMPT"``)."""
    return app_settings.PROMPTS[name or app_settings.PROMPT]


def composed_queries(embedder, *, image_features, texts, method=DEFAULT_METHOD, template=None):
    """Return normalised query vectors [n, dim] for raw reference features [n, dim] and n texts."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "image_only":
        return normalise(image_features)
    if method == "text_only":
        return embedder.embed_texts(texts)
    if method == "image_plus_text":
        return normalise(normalise(image_features) + embedder.embed_texts(texts))
    pic2word = embedder.compose(image_features, texts, template=template or prompt_template())
    if method == "pic2word_plus_image":
        return plus_image(pic2word, image_features, embedder.image_weight)
    if method == "fusion":
        return normalise(pic2word + composed_queries(embedder, image_features=image_features, texts=texts,
                                                     method="image_plus_text"))
    return pic2word

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

import html
import unicodedata
from functools import cache

import numpy as np

from p2w_search.conf import app_settings

__all__ = [
    "METHODS", "DEFAULT_METHOD", "PROMPTED", "composed_queries", "plus_image", "prompt_template", "normalise",
    "check_change", "as_tokenized", "has_words", "STAR_IN_CHANGE", "NO_WORDS_IN_CHANGE", "NO_WORDS_IN_TEXT",
]

METHODS = ("pic2word_plus_image", "pic2word", "image_only", "text_only", "image_plus_text", "fusion")
DEFAULT_METHOD = "pic2word_plus_image"
PROMPTED = ("pic2word_plus_image", "pic2word", "fusion")  # the methods that use a prompt template
STAR_IN_CHANGE = "Write the change in words, without '*' (for '5 * hotel style', write '5 star hotel style')."
# What the model would read of a text of only spaces, invisible or control characters or "&nbsp;": nothing, and a
# search for nothing ranked the catalog by the empty sentence, an answer to no question.
_NO_WORDS = "has nothing the search model reads (only spaces, invisible or control characters, or entities like &nbsp;)"
NO_WORDS_IN_CHANGE = f"Write the change in words: this one {_NO_WORDS}."
NO_WORDS_IN_TEXT = f"Write what you are looking for in words: this text {_NO_WORDS}."


def normalise(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def check_change(text):
    """Raise ValueError, in the shopper's terms, for a change that cannot be composed as written.

    The prompt's ``*`` is the reference image's pseudo word; a ``*`` of the shopper's would
    be a second one, so it is refused with a message that says what to write instead. The
    text is checked as the tokenizer reads it (``as_tokenized``): ``&ast;``, ``&#42;`` and a
    fullwidth ``＊`` are a ``*`` there too. A change the tokenizer reads as nothing is refused too.
    """
    tokenized = as_tokenized(text)
    if not _visible(tokenized):
        raise ValueError(NO_WORDS_IN_CHANGE)
    if "*" in tokenized:
        raise ValueError(STAR_IN_CHANGE)


def has_words(text):
    """Whether the tokenizer reads anything of ``text`` (not only spaces, invisible or control characters)."""
    return _visible(as_tokenized(text))


def _visible(tokenized):
    """Whether ``tokenized`` holds a character a shopper sees: ftfy keeps format characters (a zero-width space,
    a soft hyphen, a bidi override), which the tokenizer then reads as bytes: a change of those alone was
    composed as a change no one could read."""
    return any(unicodedata.category(ch) != "Cf" for ch in tokenized.replace(" ", ""))


def as_tokenized(text):
    """``text`` as CLIP's tokenizer reads it: open_clip's ``basic_clean`` and ``whitespace_clean``.

    That is ftfy's ``fix_text`` (which unescapes HTML entities and makes fullwidth forms ASCII),
    HTML entities unescaped twice more, and runs of whitespace as one space; lower-casing
    (the tokenizer's last step) is left to the caller. Without ftfy (a web process without the
    ``models`` extra) it errs towards cleaning more: entities and fullwidth forms until none is left.
    """
    fix_text = _ftfy_fix_text()
    if fix_text is not None:
        text = html.unescape(html.unescape(fix_text(text)))
    else:
        previous = None
        while text != previous:  # each pass shortens the text or makes it narrower: it ends
            previous, text = text, html.unescape(text).translate(_FULLWIDTH)
    return " ".join(text.split())


# ftfy's fix_character_width, for its ASCII range: U+FF01-U+FF5E are "!"-"~", U+3000 a space.
_FULLWIDTH = {0x3000: " ", **{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}}


@cache
def _ftfy_fix_text():
    try:
        from ftfy import fix_text  # open_clip's dependency: where the tokenizer runs, it is there
    except ImportError:
        return None
    return fix_text


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

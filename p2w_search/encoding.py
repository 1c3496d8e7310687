"""Encode search queries (a text, an image, or a composed query) with the serving model.

With ``QUERY_ENCODING = "worker"`` the encoding runs on the Celery query queue, apart
from bulk embedding, so a catalog upload never delays a shopper; the web process waits
at most ``QUERY_TIMEOUT`` seconds. ``"local"`` encodes in the web process (small setups).
"""

import base64
import io
import time

import numpy as np
from p2w_search import dispatch
from p2w_search.composition import check_change, composed_queries
from p2w_search.conf import app_settings, image_limits
from p2w_search.imaging import load_image
from p2w_search.models import EmbeddingModel, ImageEmbedding

__all__ = [
    "QueryEncoderUnavailable", "QueryRejected", "encode_query", "encode_locally", "encode_on_worker",
    "TEXT", "IMAGE", "COMPOSED",
]

TEXT = "text"
IMAGE = "image"
# The request fields that a refused text or change is reported on, in the API and the storefront.
TEXT_FIELD = "q"
CHANGE_FIELD = "text"
# payload: {"text", "method", "template", and "image_id" (a catalog image) or "image" (bytes)}
COMPOSED = "composed"


class QueryEncoderUnavailable(Exception):
    """No worker encoded the query in time, or the queue cannot be reached."""


class QueryRejected(ValueError):
    """The query cannot be encoded as given (e.g. a text too long for the model); ``field`` names the part."""

    def __init__(self, field, reason):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def encode_query(model, kind, payload, *, timings=None):
    """Return the normalised query vector (list of floats) of ``payload`` under ``model``.

    ``kind`` is TEXT (payload: str), IMAGE (payload: bytes, already checked by the caller)
    or COMPOSED (payload: dict, see above). ``timings``, a dict, receives milliseconds:
    ``encode`` (the encoding itself, wherever it ran) and, on a worker, ``queue`` (the rest
    of the round trip: broker, result backend, waiting for a free worker).
    """
    payload = _to_message(payload)
    started = time.perf_counter()
    if app_settings.QUERY_ENCODING == "local":
        vector = encode_locally(model.pk, kind, payload)
        _record(timings, encode=_ms_since(started))
        return vector
    timeout = float(app_settings.QUERY_TIMEOUT)
    try:
        answer = dispatch.ask(dispatch.ENCODE_QUERY, args=(model.pk, kind, payload), queue=app_settings.QUERY_QUEUE,
                              timeout=timeout)
    except dispatch.NoAnswer:
        raise QueryEncoderUnavailable(
            f"No search worker answered within {timeout:g} s; the query queue "
            f"'{app_settings.QUERY_QUEUE}' has no running worker or is overloaded. Try again shortly."
        ) from None
    except dispatch.QueueUnavailable as exc:
        raise QueryEncoderUnavailable(str(exc)) from None
    if "field" in answer:  # the worker refused the query: say why, in the request's terms
        raise QueryRejected(answer["field"], answer["reason"])
    _record(timings, encode=answer["encode_ms"], queue=max(_ms_since(started) - answer["encode_ms"], 0.0))
    return answer["vector"]


def encode_on_worker(model_id, kind, payload):
    """The query task's answer: ``{"vector", "encode_ms"}``, or ``{"field", "reason"}`` for a refused query.

    A refusal comes back as a value, not as an exception, so the web process can answer
    400 in the request's terms; ``encode_ms`` lets it tell the encoding from the queue.
    """
    started = time.perf_counter()
    try:
        vector = encode_locally(model_id, kind, payload)
    except QueryRejected as exc:
        return {"field": exc.field, "reason": exc.reason}
    return {"vector": vector, "encode_ms": _ms_since(started)}


def encode_locally(model_id, kind, payload):
    """Encode in this process; raise QueryRejected for a query that cannot be encoded."""
    from p2w_search.indexing import embedder_for
    from p2w_search.pic2word import PromptTooLong  # imports torch: only processes that encode need it

    model = EmbeddingModel.objects.get(pk=model_id)
    embedder = embedder_for(model)
    if kind == TEXT:
        tokens, limit = embedder.count_tokens(payload), embedder.context_length
        if tokens > limit:  # the tokenizer would cut it, and the search would silently ignore the rest
            raise QueryRejected(TEXT_FIELD, f"The text is too long for the search model: it has {tokens} tokens "
                                            f"and the model reads at most {limit}. Shorten it.")
        return embedder.embed_texts([payload])[0].tolist()
    if kind == IMAGE:
        return embedder.embed_images([_decode(payload)])[0].tolist()
    if kind == COMPOSED:
        if "image_id" in payload:
            features = reference_features(model, [payload["image_id"]])
        else:
            features = embedder.embed_images([_decode(payload["image"])], normalize=False)
        try:
            check_change(payload["text"])
        except ValueError as exc:
            raise QueryRejected(CHANGE_FIELD, str(exc)) from None
        try:
            composed = composed_queries(
                embedder, image_features=features, texts=[payload["text"]], method=payload["method"],
                template=payload.get("template"),
            )
        except PromptTooLong as exc:  # the shopper's change, not the internal prompt, is what to shorten
            raise QueryRejected(CHANGE_FIELD, f"The change is too long for the search model: with the prompt around "
                                              f"it, it has {exc.tokens} tokens and the model reads at most "
                                              f"{exc.limit}. Shorten it.") from None
        return composed[0].tolist()
    raise ValueError(f"unknown query kind {kind!r}")


def reference_features(model, image_ids):
    """Return the raw image features [n, dim] of catalog images, from their stored rows."""
    rows = {
        image_id: np.asarray(vector, dtype=np.float32) * norm
        for image_id, vector, norm in ImageEmbedding.objects.filter(
            model=model, image_id__in=image_ids, state=ImageEmbedding.State.READY
        ).values_list("image_id", "vector", "norm")
    }
    return np.stack([rows[image_id] for image_id in image_ids])


def _ms_since(started):
    return (time.perf_counter() - started) * 1000


def _record(timings, **milliseconds):
    if timings is not None:
        for name, value in milliseconds.items():
            timings[name] = timings.get(name, 0.0) + value


def _to_message(payload):
    """Make ``payload`` JSON-safe for the broker: image bytes travel as base64 text."""
    if isinstance(payload, bytes):
        return base64.b64encode(payload).decode("ascii")
    if isinstance(payload, dict) and isinstance(payload.get("image"), bytes):
        return {**payload, "image": _to_message(payload["image"])}
    return payload


def _decode(encoded):
    return load_image(io.BytesIO(base64.b64decode(encoded)), **image_limits())

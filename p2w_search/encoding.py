"""Encode search queries (a text, an image, or a composed query) with the serving model.

With ``QUERY_ENCODING = "worker"`` the encoding runs on the Celery query queue, apart
from bulk embedding, so a catalog upload never delays a shopper; the web process waits
at most ``QUERY_TIMEOUT`` seconds. ``"local"`` encodes in the web process (small setups).
"""

import base64
import io
import logging
import queue
import threading
import time

import numpy as np

from p2w_search import dispatch
from p2w_search.composition import (
    NO_WORDS_IN_TEXT,
    PROMPTED,
    STAR_IN_CHANGE,
    check_change,
    composed_queries,
    has_words,
    prompt_template,
)
from p2w_search.conf import app_settings, image_limits
from p2w_search.imaging import ImageRejected, load_image
from p2w_search.models import EmbeddingModel, ImageEmbedding

__all__ = [
    "QueryEncoderUnavailable", "ModelGone", "QueryRejected", "encode_query", "encode_locally", "encode_on_worker",
    "TEXT", "IMAGE", "COMPOSED",
]

logger = logging.getLogger(__name__)

TEXT = "text"
IMAGE = "image"
# The request fields that a refused text or change is reported on, in the API and the storefront.
TEXT_FIELD = "q"
CHANGE_FIELD = "text"
# payload: {"text", "method", "template", and "image_id" (a catalog image) or "image" (bytes)}
COMPOSED = "composed"


class QueryEncoderUnavailable(Exception):
    """No worker encoded the query in time, or the queue cannot be reached."""


class ModelGone(QueryEncoderUnavailable):
    """The model a search began with was deleted before its query was encoded (switched, then the old one deleted).

    Not the shopper's doing and it passes: the next search takes the model that serves now.
    """

    def __init__(self):
        super().__init__(MODEL_GONE)


MODEL_GONE = "The search model was changed while this search ran. Search again."
WORKER_FAILED = "The search worker could not encode this query (the error is logged for the shop's staff). Try again."


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
    except dispatch.TaskFailed as exc:  # a 503 in words, not the worker's exception raised here (a 500)
        logger.error("query %s under model %s: %s\n%s", kind, model.pk, exc, exc.traceback or "")
        raise QueryEncoderUnavailable(WORKER_FAILED) from None
    if "unavailable" in answer:  # the worker found the model deleted (encode_on_worker): as a local encoding does
        raise ModelGone()
    if "field" in answer:  # the worker refused the query: say why, in the request's terms
        raise QueryRejected(answer["field"], answer["reason"])
    _record(timings, encode=answer["encode_ms"], queue=max(_ms_since(started) - answer["encode_ms"], 0.0))
    return answer["vector"]


def encode_on_worker(model_id, kind, payload):
    """The query task's answer: ``{"vector", "encode_ms", "batch"}``, ``{"field", "reason"}`` for a refused query,
    or ``{"unavailable": reason}`` when its model was deleted meanwhile (ModelGone).

    A refusal comes back as a value, not as an exception, so the web process can answer
    400 in the request's terms; ``encode_ms`` (the forward passes of the batch the query
    was encoded in, of ``batch`` queries) lets it tell the encoding from the queue. The
    query worker's threads hand their queries to one batcher (``QUERY_BATCH_SIZE``).
    """
    try:
        return _encode_on_worker(model_id, kind, payload)
    except ModelGone as exc:  # an answer, not a failure: the web process says it in words
        return {"unavailable": str(exc)}


def _encode_on_worker(model_id, kind, payload):
    size = int(app_settings.QUERY_BATCH_SIZE)
    if size > 1:
        return _batcher(size).encode(model_id, kind, payload)
    started = time.perf_counter()
    (outcome,) = encode_many(model_id, [(kind, payload)])
    if _failed(outcome):
        raise outcome
    return _answer(outcome, _ms_since(started), 1)


def _failed(outcome):
    """Whether ``outcome`` (of encode_many) is the exception that its query's encoding raised (not a refusal)."""
    return isinstance(outcome, Exception) and not isinstance(outcome, QueryRejected)


def _answer(outcome, encode_ms, batch):
    if isinstance(outcome, QueryRejected):
        return {"field": outcome.field, "reason": outcome.reason}
    return {"vector": outcome, "encode_ms": encode_ms, "batch": batch}


def encode_locally(model_id, kind, payload):
    """Encode in this process; raise QueryRejected for a query that cannot be encoded."""
    (outcome,) = encode_many(model_id, [(kind, payload)])
    if isinstance(outcome, Exception):  # a QueryRejected, or what its encoding raised
        raise outcome
    return outcome


def encode_many(model_id, queries):
    """Encode ``queries`` (``[(kind, payload)]``) under one model, each kind in one batch of forward passes.

    Returns, in order, each query's vector (a list of floats), the QueryRejected that says
    why it cannot be encoded, or (a composed query) the exception its encoding raised; one
    query's refusal or failure does not stop the others, which may be other shoppers' (the
    query worker's batches).
    """
    from p2w_search.indexing import embedder_for

    model = EmbeddingModel.objects.filter(pk=model_id).first()
    if model is None:  # deleted since the search read it as serving: every query of this batch raises it
        raise ModelGone()
    embedder = embedder_for(model)
    outcomes = [None] * len(queries)
    by_kind = {TEXT: [], IMAGE: [], COMPOSED: []}
    for position, (kind, payload) in enumerate(queries):
        if kind not in by_kind:
            raise ValueError(f"unknown query kind {kind!r}")
        by_kind[kind].append(position)

    for i in by_kind[TEXT]:
        if not has_words(queries[i][1]):  # as the web process checks it, where the tokenizer's cleaning may differ
            outcomes[i] = QueryRejected(TEXT_FIELD, NO_WORDS_IN_TEXT)
    texts = _fitting(embedder, [(i, queries[i][1]) for i in by_kind[TEXT] if outcomes[i] is None], outcomes,
                     field=TEXT_FIELD, what="text")
    if texts:
        for i, vector in zip(texts, embedder.embed_texts([queries[i][1] for i in texts])):
            outcomes[i] = vector.tolist()

    images = _decoded(queries, by_kind[IMAGE], outcomes, key=None)
    if images:
        for i, vector in zip(images, embedder.embed_images(list(images.values()))):
            outcomes[i] = vector.tolist()

    composed = [i for i in by_kind[COMPOSED] if not _refused_change(queries[i][1], i, outcomes)]
    groups = {}
    for i in composed:
        payload = queries[i][1]
        template = payload.get("template") or prompt_template()
        if payload["method"] in PROMPTED:
            prompt = template.replace("{text}", payload["text"])
            if not _fits(embedder, prompt, i, outcomes, field=CHANGE_FIELD, what="change", around=True):
                continue
        groups.setdefault((payload["method"], template), []).append(i)
    if groups:
        members = [i for group in groups.values() for i in group]
        features = dict(zip(members, _reference_features(model, embedder, queries, members, outcomes)))
        for i in members:
            if features[i] is None and outcomes[i] is None:  # its vector went between the check and now
                outcomes[i] = QueryRejected("product",
                                            "Its image is not embedded yet; try again once indexing is done.")
        for (method, template), group in groups.items():
            group = [i for i in group if features[i] is not None]
            if group:
                _compose(embedder, [(i, features[i], queries[i][1]["text"]) for i in group], outcomes,
                         method=method, template=template)
    return outcomes


def _compose(embedder, members, outcomes, *, method, template):
    """Fill ``outcomes`` of ``members`` (``[(position, features, text)]``) with their composed query vectors.

    When the batch fails, each member is composed alone, so that the query at fault fails
    alone: refused (a QueryRejected) when its text breaks the prompt, else with the exception.
    """
    try:
        vectors = composed_queries(embedder, image_features=np.stack([features for _, features, _ in members]),
                                   texts=[text for _, _, text in members], method=method, template=template)
    except Exception as exc:  # noqa: BLE001 - it is this batch's outcome; the callers raise it for its query
        if len(members) > 1:
            for member in members:
                _compose(embedder, [member], outcomes, method=method, template=template)
        else:
            outcomes[members[0][0]] = _prompt_refusal(exc) or exc
        return
    for (i, _, _), vector in zip(members, vectors):
        outcomes[i] = vector.tolist()


def _prompt_refusal(exc):
    """The QueryRejected for a change that breaks the prompt (pic2word's StrayStar, PromptTooLong), or None."""
    try:
        from p2w_search.pic2word import PromptTooLong, StrayStar
    except ImportError:  # no torch here, so the exception is not pic2word's
        return None
    if isinstance(exc, StrayStar):  # a '*' that check_change did not see as the tokenizer does
        return QueryRejected(CHANGE_FIELD, STAR_IN_CHANGE)
    if isinstance(exc, PromptTooLong):
        return _too_long(CHANGE_FIELD, "change", exc.tokens, exc.limit, around=True)
    return None


def _fitting(embedder, items, outcomes, *, field, what):
    return [i for i, text in items if _fits(embedder, text, i, outcomes, field=field, what=what)]


def _fits(embedder, text, position, outcomes, *, field, what, around=False):
    """Whether ``text`` fits the model's context; if not, its refusal goes to ``outcomes[position]``."""
    tokens, limit = embedder.count_tokens(text), embedder.context_length
    if tokens <= limit:
        return True
    # Refused, never cut: a truncated query would silently ignore the rest of what the shopper asked.
    outcomes[position] = _too_long(field, what, tokens, limit, around=around)
    return False


def _too_long(field, what, tokens, limit, *, around):
    with_prompt = " with the prompt around it," if around else ""
    return QueryRejected(field, f"The {what} is too long for the search model:{with_prompt} it has {tokens} tokens "
                                f"and the model reads at most {limit}. Shorten it.")


def _refused_change(payload, position, outcomes):
    try:
        check_change(payload["text"])
    except ValueError as exc:
        outcomes[position] = QueryRejected(CHANGE_FIELD, str(exc))
        return True
    return False


def _decoded(queries, positions, outcomes, *, key):
    """``{position: PIL image}`` of the uploaded photos among ``positions``; a broken one is refused in ``outcomes``."""
    images = {}
    for i in positions:
        payload = queries[i][1] if key is None else queries[i][1][key]
        try:
            images[i] = _decode(payload)
        except ImageRejected as exc:
            outcomes[i] = QueryRejected("image", f"The image cannot be used: {exc.reason}.")
    return images


def _reference_features(model, embedder, queries, positions, outcomes):
    """The raw image features of each composed query's reference: stored for catalog images, embedded for photos."""
    stored_ids = [queries[i][1]["image_id"] for i in positions if "image_id" in queries[i][1]]
    stored = reference_features(model, stored_ids) if stored_ids else {}
    uploads = _decoded(queries, [i for i in positions if "image_id" not in queries[i][1]], outcomes, key="image")
    embedded = dict(zip(uploads, embedder.embed_images(list(uploads.values()), normalize=False))) if uploads else {}
    return [stored.get(queries[i][1]["image_id"]) if "image_id" in queries[i][1] else embedded.get(i)
            for i in positions]


def reference_features(model, image_ids):
    """Return ``{image id: raw image features [dim]}`` of catalog images, from their stored rows."""
    return {
        image_id: np.asarray(vector, dtype=np.float32) * norm
        for image_id, vector, norm in ImageEmbedding.objects.filter(
            model=model, image_id__in=image_ids, state=ImageEmbedding.State.READY
        ).values_list("image_id", "vector", "norm")
    }


class _Query:
    __slots__ = ("model_id", "kind", "payload", "done", "answer", "error")

    def __init__(self, model_id, kind, payload):
        self.model_id, self.kind, self.payload = model_id, kind, payload
        self.done, self.answer, self.error = threading.Event(), None, None


class QueryBatcher:
    """Encodes the queries that arrive together in one batch of forward passes.

    The query worker runs a pool of threads (``--pool threads``); each task hands its query
    here and waits. One thread takes every query waiting, up to ``size``, encodes them
    together and answers each; the queries that arrive meanwhile make the next batch. No
    query waits for others to arrive: a lone one is encoded at once, as before.
    """

    def __init__(self, size):
        self.size = size
        self._waiting = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="p2w-query-batcher", daemon=True)
        self._thread.start()

    def encode(self, model_id, kind, payload):
        query = _Query(model_id, kind, payload)
        self._waiting.put(query)
        query.done.wait()
        if query.error is not None:
            raise query.error
        return query.answer

    def _run(self):
        from django.db import close_old_connections

        while True:
            batch = [self._waiting.get()]
            while len(batch) < self.size:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            by_model = {}
            for query in batch:
                by_model.setdefault(query.model_id, []).append(query)
            for model_id, queries in by_model.items():
                started = time.perf_counter()
                try:
                    outcomes = encode_many(model_id, [(q.kind, q.payload) for q in queries])
                except Exception as exc:  # noqa: BLE001 - each waiting task raises it, as it would alone
                    for query in queries:
                        query.error = exc
                else:
                    encode_ms = _ms_since(started)
                    for query, outcome in zip(queries, outcomes):
                        if _failed(outcome):
                            query.error = outcome  # its own failure: the others of the batch have their answers
                        else:
                            query.answer = _answer(outcome, encode_ms, len(queries))
                for query in queries:
                    query.done.set()
            close_old_connections()


_batchers = {}
_batchers_lock = threading.Lock()


def _batcher(size):
    with _batchers_lock:
        if size not in _batchers:
            _batchers[size] = QueryBatcher(size)
        return _batchers[size]


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

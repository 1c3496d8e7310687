"""Encode search queries (a text or an image) with the serving model.

With ``QUERY_ENCODING = "worker"`` the encoding runs on the Celery query queue, apart
from bulk embedding, so a catalog upload never delays a shopper; the web process waits
at most ``QUERY_TIMEOUT`` seconds. ``"local"`` encodes in the web process (small setups).
"""

import base64
import io

from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError as BrokerError

from p2w_search.conf import app_settings
from p2w_search.imaging import load_image
from p2w_search.models import EmbeddingModel

__all__ = ["QueryEncoderUnavailable", "encode_query", "encode_locally", "TEXT", "IMAGE"]

TEXT = "text"
IMAGE = "image"


class QueryEncoderUnavailable(Exception):
    """No worker encoded the query in time, or the queue cannot be reached."""


def encode_query(model, kind, payload):
    """Return the normalised query vector (list of floats) of ``payload`` under ``model``.

    ``kind`` is TEXT (payload: str) or IMAGE (payload: bytes, already checked by the caller).
    """
    if kind == IMAGE:
        payload = base64.b64encode(payload).decode("ascii")
    if app_settings.QUERY_ENCODING == "local":
        return encode_locally(model.pk, kind, payload)
    from p2w_search.tasks import encode_query as encode_task

    timeout = float(app_settings.QUERY_TIMEOUT)
    try:
        result = encode_task.apply_async(
            args=(model.pk, kind, payload), queue=app_settings.QUERY_QUEUE, expires=timeout
        )
        return result.get(timeout=timeout)
    except CeleryTimeout:
        raise QueryEncoderUnavailable(
            f"No search worker answered within {timeout:g} s; the query queue "
            f"'{app_settings.QUERY_QUEUE}' has no running worker or is overloaded. Try again shortly."
        ) from None
    except BrokerError as exc:
        raise QueryEncoderUnavailable(f"The task queue cannot be reached ({exc}). Try again shortly.") from None


def encode_locally(model_id, kind, payload):
    """Encode in this process; the body of the worker task."""
    from p2w_search.indexing import embedder_for

    embedder = embedder_for(EmbeddingModel.objects.get(pk=model_id))
    if kind == TEXT:
        return embedder.embed_texts([payload])[0].tolist()
    if kind == IMAGE:
        image = load_image(
            io.BytesIO(base64.b64decode(payload)),
            max_bytes=app_settings.MAX_IMAGE_BYTES,
            max_pixels=app_settings.MAX_IMAGE_PIXELS,
        )
        return embedder.embed_images([image])[0].tolist()
    raise ValueError(f"unknown query kind {kind!r}")

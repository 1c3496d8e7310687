"""Error responses in the OpenAPI schema, so clients (and the fuzz tests) know every answer."""

from drf_spectacular.utils import OpenApiResponse

__all__ = ["errors"]

_FIELD_ERRORS = OpenApiResponse(
    response={"type": "object", "additionalProperties": {
        "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}},
    description="Bad input: each field with its reasons (or a ``detail`` for a body that cannot be parsed).",
)
_DESCRIPTIONS = {
    401: "Not authenticated.",
    403: "Not allowed (e.g. not this product's merchant).",
    404: "No such object, or no such page.",
    409: "The object is being written by another change (an import of the catalog, say); try again once it ends.",
    415: "The body's media type is none this endpoint reads (multipart, a form or JSON), or the request names none.",
    429: "Too many requests; try again later.",
    503: "Unavailable for now (Retry-After): no model serves yet (code not_ready), no worker answered in time (busy), "
         "the search model was changed while the search ran (model_changed: search again at once), or the database "
         "cannot be reached (no code).",
}
_DETAIL = {"type": "object", "properties": {
    "detail": {"type": "string"},
    "code": {"type": "string", "enum": ["not_ready", "busy", "model_changed"]},  # a search's 503 only
}, "required": ["detail"]}


def errors(*codes):
    """OpenAPI responses for the given error status codes (400: per-field errors, others: a detail)."""
    return {code: _FIELD_ERRORS if code == 400 else OpenApiResponse(response=_DETAIL, description=_DESCRIPTIONS[code])
            for code in codes}

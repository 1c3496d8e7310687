"""Content negotiation that names the format it cannot answer in, for the app's views and any shop's.

DRF answers ``?format=xml`` (or a ``.xml`` suffix) that no renderer has with a bare 404
"Not found.": no word of which part of the request or why. Here the query parameter is a 400
naming ``format`` and the formats there are, as any other parameter's bad value is; a suffix
stays a 404 (the URL names a resource that does not exist), saying the same. A shop's other
views get it with ``REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"]``.
"""

from django.http import Http404
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation

__all__ = ["ContentNegotiation"]


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation; a format no renderer has is refused in words (400 for ``?format=``, 404 for a suffix)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404:  # raised only when no renderer has the format asked for
            formats = ", ".join(dict.fromkeys(renderer.format for renderer in renderers))
            if format_suffix:
                raise NotFound(f"There is no {format_suffix!r} format of this resource. The formats are: "
                               f"{formats}.") from None
            name = self.settings.URL_FORMAT_OVERRIDE
            asked = request.query_params.get(name)
            raise ValidationError({name: [f"Unknown format {asked!r}. The formats are: {formats}."]}) from None

"""Search endpoints: by text, by image, "more like this product" and "like this, but ..." (search.py does the work).

Query parameters carry the options (``k``, ``exclude``, the product filters and the
page); the image search takes its image in the request body. Every answer carries a
``Server-Timing`` header (W3C Server Timing) saying where the time went, in milliseconds:
``encode`` (getting the query vector: the model's forward passes, on the worker when it
ran there, or a stored vector), ``queue`` (the rest of the round trip to the query
worker), ``sql`` (the ranking in PostgreSQL), ``serialize`` (loading and serialising the
page's products), ``total`` (the whole view).
"""

import time
from functools import partial

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.settings import api_settings

from p2w_search import search, search_health
from p2w_search.api.filters import SearchFilterBackend, product_filterset
from p2w_search.api.negotiation import ContentNegotiation
from p2w_search.api.outages import RETRY_AFTER_SECONDS, DatabaseOutageMixin
from p2w_search.api.pagination import PagePagination
from p2w_search.api.parameters import NOT_TEXT, not_text, repeated_parameters, unknown_parameters
from p2w_search.api.parsers import FormParser, JSONParser, MultiPartParser, limit_exceeded
from p2w_search.api.schema import errors
from p2w_search.api.serializers import (
    ComposedSearchParams,
    ImageSearchParams,
    SearchParams,
    SearchResultSerializer,
    SimilarParams,
    TextSearchParams,
)
from p2w_search.conf import app_settings
from p2w_search.files import image_url
from p2w_search.throttling import AnonSearchThrottle, counts

__all__ = [
    "TextSearchView", "ImageSearchView", "ComposedSearchView", "SimilarProductsView", "ServiceUnavailable",
    "SearchPagination",
]


SEARCH_ERRORS = errors(400, 404, 429, 503)
BODY_SEARCH_ERRORS = errors(400, 404, 415, 429, 503)  # a search with a body: one of a media type no parser reads


class ServiceUnavailable(APIException):
    """A search that cannot run now (503, Retry-After): ``{"detail": reason, "code": code}``, the code being
    ``search.Unavailable``'s ("not_ready", "busy" or "model_changed"), which tells a client what to do next."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Search is unavailable right now. Try again shortly."
    default_code = "service_unavailable"
    wait = RETRY_AFTER_SECONDS  # DRF's exception handler sends it as Retry-After

    def __init__(self, detail=None, code=None, wait=RETRY_AFTER_SECONDS):
        super().__init__(detail, code)
        if code is not None:  # a dict detail is DRF's whole body
            self.detail = {"detail": self.detail, "code": code}
        self.wait = wait  # None for "model_changed": the next search runs at once, under the model that serves now


class SearchPagination(PagePagination):
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        self.page_size = app_settings.PAGE_SIZE
        return super().get_page_size(request)


class _PhotoParser(MultiPartParser):
    max_files = 1  # a search takes one photo, whatever the site's DATA_UPLOAD_MAX_NUMBER_FILES


class _SearchView(DatabaseOutageMixin, GenericAPIView):
    """The API's door onto the search service (search.py): parameters in, a page of results out."""

    permission_classes = [AllowAny]
    content_negotiation_class = ContentNegotiation
    throttle_classes = [AnonSearchThrottle]
    filter_backends = [SearchFilterBackend]
    pagination_class = SearchPagination
    serializer_class = SearchResultSerializer
    params_class = None

    @property
    def filterset_class(self):
        return product_filterset()

    def get_queryset(self):
        return search.visible_products()

    def dispatch(self, request, *args, **kwargs):
        self.timings = {}
        started = time.perf_counter()
        response = super().dispatch(request, *args, **kwargs)
        self.timings["total"] = (time.perf_counter() - started) * 1000
        response["Server-Timing"] = server_timing(self.timings)
        search_health.record(search_health.endpoint_name(request), response.status_code, self.timings)
        return response

    def handle_exception(self, exc):
        # More query parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS: Django refuses the query string where it is
        # first read, which no parser sees; a 400 that names the limit, not Django's one of no body.
        return super().handle_exception(limit_exceeded(exc) or exc)

    def finalize_response(self, request, response, *args, **kwargs):
        # The throttle only looked at the budget; a search is counted once it ran, so a
        # request refused for its own input (400) costs the shopper nothing.
        # An OPTIONS request searches nothing: the throttle neither counts nor refuses it (throttling.searches).
        if counts(response.status_code):
            for throttle in self.get_throttles():
                if hasattr(throttle, "spend"):
                    throttle.spend(request)
        return super().finalize_response(request, response, *args, **kwargs)

    def params(self, query, body=None):
        """The request's parameters (``query``, and a POST's ``body``), validated.

        An unknown one is a 400 that lists the known ones, and so is one given twice (in the
        query string, or there and in the body) and one whose bytes are not UTF-8. Filters and
        the page (and DRF's ``format``) are read from the query string only (``filter_queryset``,
        the paginator): in the body, one is a 400 that says where it goes, not a filter silently
        left out.
        """
        data = {**query.dict(), **body} if body else query  # a GET's QueryDict as it is: the serializer reads lists
        params = self.params_class(data=data, context=self.get_serializer_context())
        # ``format`` is DRF's (negotiation.py answers one it has not): the browsable API links to ?format=json.
        in_query = {*self.filterset_class.base_filters, "page", "page_size", api_settings.URL_FORMAT_OVERRIDE}
        known = {*params.fields, *in_query}
        problems = unknown_parameters(data, known)
        # One value each (the filters judge their own): a second k or page was silently the one used.
        single = [name for name, field in params.fields.items() if not isinstance(field, serializers.ListField)]
        problems.update(repeated_parameters(query, {*single, "page", "page_size", api_settings.URL_FORMAT_OVERRIDE}))
        # Bytes that are not UTF-8 (``?q=%FF``): Django reads them as U+FFFD, which was searched as if typed.
        problems.update({name: [NOT_TEXT] for name in not_text(self.request.META.get("QUERY_STRING", ""), known)})
        problems.update({name: [f"Give {name} once: in the query string or in the body, not both."]
                         for name in sorted(set(body or ()) & set(query) & set(params.fields))})
        problems.update({name: [f"Send {name} in the query string (?{name}=...), not in the body: filters and "
                                "pages are read from the query string only."]
                         for name in sorted(set(body or ()) & in_query)})
        if problems:
            raise ValidationError(problems)
        params.is_valid(raise_exception=True)
        return params.validated_data

    def respond(self, run, params):
        """Run ``run(products=..., k=..., exclude=..., timings=...)``, a search of search.py, and page its results."""
        products = self.filter_queryset(self.get_queryset())  # 400 on a bad filter value
        try:
            results = run(products=products, k=params["k"], exclude=params["exclude"], timings=self.timings)
        except search.Unavailable as exc:
            raise ServiceUnavailable(exc.reason, code=exc.code, wait=exc.retry_after) from None
        except search.Rejected as exc:
            raise ValidationError({exc.field or "non_field_errors": [exc.reason]}) from None
        started = time.perf_counter()
        page = self.paginate_queryset(results.hits)
        rows = [{"score": round(score, 6), "image": {"id": image.pk, "url": self.request.build_absolute_uri(
                    image_url(image))}, "product": product} for product, image, score in results.products(page)]
        response = self.get_paginated_response(self.get_serializer(rows, many=True).data)
        self.timings["serialize"] = (time.perf_counter() - started) * 1000
        response["X-P2W-Model"] = results.model.key
        return response


class TextSearchView(_SearchView):
    """Products whose images match a text, e.g. ``?q=red striped dress``."""

    params_class = TextSearchParams

    @extend_schema(parameters=[TextSearchParams], responses={200: SearchResultSerializer(many=True), **SEARCH_ERRORS})
    def get(self, request):
        params = self.params(request.query_params)
        return self.respond(partial(search.text, params["q"]), params)


class ImageSearchView(_SearchView):
    """Products that look like an uploaded photo (``image``) or a catalog image (``image_id``)."""

    params_class = ImageSearchParams
    parser_classes = [_PhotoParser, FormParser, JSONParser]

    @extend_schema(parameters=[SearchParams], request=ImageSearchParams,
                   responses={200: SearchResultSerializer(many=True), **BODY_SEARCH_ERRORS})
    def post(self, request):
        params = self.params(request.query_params, _plain(request.data))
        return self.respond(partial(search.image, params.get("image"), image_id=params.get("image_id")), params)


class ComposedSearchView(_SearchView):
    """"Like this, but ...": a reference product or photo plus a change in words (Pic2Word)."""

    params_class = ComposedSearchParams
    parser_classes = [_PhotoParser, FormParser, JSONParser]

    @extend_schema(parameters=[SearchParams], request=ComposedSearchParams,
                   responses={200: SearchResultSerializer(many=True), **BODY_SEARCH_ERRORS})
    def post(self, request):
        params = self.params(request.query_params, _plain(request.data))
        return self.respond(partial(
            search.composed, text=params["text"], product=params.get("product"), image_id=params.get("image_id"),
            image=params.get("image"), method=params["method"], prompt=params.get("prompt"),
        ), params)


class SimilarProductsView(_SearchView):
    """"More like this": products similar to one product (which is left out)."""

    params_class = SimilarParams

    @extend_schema(parameters=[SimilarParams], responses={200: SearchResultSerializer(many=True), **SEARCH_ERRORS})
    def get(self, request):
        params = self.params(request.query_params)
        return self.respond(partial(search.similar, params["product"]), params)


def server_timing(timings):
    """Format ``{name: milliseconds}`` as a ``Server-Timing`` header value."""
    return ", ".join(f"{name};dur={value:.2f}" for name, value in timings.items())


def _plain(data):
    """Flatten a QueryDict (one value per key: a key given twice is refused) and keep a dict as it is; refuse
    any other body."""
    if hasattr(data, "dict"):
        repeated = repeated_parameters(data, data)
        if repeated:
            raise ValidationError(repeated)
        return data.dict()
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Send a JSON object or a form, not a JSON list or value."]})
    return data

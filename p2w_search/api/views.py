"""Search endpoints: by text, by image, and "more like this product".

Query parameters carry the options (``k``, ``exclude``, the product filters and the
page); the image search takes its image in the request body. Every answer carries a
``Server-Timing`` header (W3C Server Timing) saying where the time went, in milliseconds:
``encode`` (getting the query vector: the model's forward passes, on the worker when it
ran there, or a stored vector), ``queue`` (the rest of the round trip to the query
worker), ``sql`` (the ranking in PostgreSQL), ``serialize`` (loading and serialising the
page's products), ``total`` (the whole view).
"""

import time
from contextlib import contextmanager

from django.apps import apps
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny

from p2w_search import index, queries, search_health
from p2w_search.api.filters import product_filterset
from p2w_search.api.schema import errors
from p2w_search.api.serializers import (
    ComposedSearchParams,
    ImageSearchParams,
    SearchParams,
    SearchResultSerializer,
    SimilarParams,
    TextSearchParams,
)
from p2w_search.conf import app_settings, product_model_label
from p2w_search.models import ImageEmbedding, ProductImage
from p2w_search.throttling import AnonSearchThrottle, counts

__all__ = ["TextSearchView", "ImageSearchView", "ComposedSearchView", "SimilarProductsView", "ServiceUnavailable"]


SEARCH_ERRORS = errors(400, 404, 429, 503)


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Search is unavailable right now. Try again shortly."
    default_code = "service_unavailable"


class SearchPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        self.page_size = app_settings.PAGE_SIZE
        return super().get_page_size(request)


class _SearchView(GenericAPIView):
    """Shared flow: validate parameters, get a query vector, rank products, paginate."""

    permission_classes = [AllowAny]
    throttle_classes = [AnonSearchThrottle]
    filter_backends = [DjangoFilterBackend]
    pagination_class = SearchPagination
    serializer_class = SearchResultSerializer
    params_class = None

    @property
    def filterset_class(self):
        return product_filterset()

    def get_queryset(self):
        return apps.get_model(product_model_label())._default_manager.filter(**app_settings.SEARCH_FILTER)

    def dispatch(self, request, *args, **kwargs):
        self.timings = {}
        started = time.perf_counter()
        response = super().dispatch(request, *args, **kwargs)
        self.timings["total"] = (time.perf_counter() - started) * 1000
        response["Server-Timing"] = server_timing(self.timings)
        search_health.record(search_health.endpoint_name(request), response.status_code, self.timings)
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        # The throttle only looked at the budget; a search is counted once it ran, so a
        # request refused for its own input (400) costs the shopper nothing.
        if counts(response.status_code):
            for throttle in self.get_throttles():
                if hasattr(throttle, "spend"):
                    throttle.spend(request)
        return super().finalize_response(request, response, *args, **kwargs)

    @contextmanager
    def timed(self, name):
        """Add the milliseconds spent inside to ``self.timings[name]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + (time.perf_counter() - started) * 1000

    def params(self, data):
        params = self.params_class(data=data, context=self.get_serializer_context())
        params.is_valid(raise_exception=True)
        return params.validated_data

    def search(self, model, vector, params, *, exclude=()):
        products = self.filter_queryset(self.get_queryset())  # 400 on a bad filter value
        with self.timed("sql"):
            hits = index.nearest_products(
                model, vector, k=params["k"], products=products,
                exclude_product_ids=[*params["exclude"], *exclude],
            )
        with self.timed("serialize"):
            page = self.paginate_queryset(hits)
            results = self.get_serializer(self._expand(page), many=True).data
            response = self.get_paginated_response(results)
        response["X-P2W-Model"] = model.key
        return response

    def _expand(self, hits):
        # select_related(): the product serializer reads the product's foreign keys (the demo's
        # merchant); without the join that is one query per result (bench/query_latency.py).
        products = self.get_queryset().select_related().in_bulk([hit.product_id for hit in hits])
        images = ProductImage.objects.in_bulk([hit.image_id for hit in hits])
        expanded = []
        for hit in hits:
            product, image = products.get(hit.product_id), images.get(hit.image_id)
            if product is None or image is None:  # deleted since the ranking
                continue
            url = self.request.build_absolute_uri(image.file.url)
            expanded.append({"score": round(hit.score, 6), "image": {"id": image.pk, "url": url}, "product": product})
        return expanded

    def serving_model(self):
        try:
            return index.serving_model()
        except index.IndexNotReady as exc:
            raise ServiceUnavailable(str(exc)) from None

    def encode(self, model, kind, payload):
        try:
            return queries.encode_query(model, kind, payload, timings=self.timings)
        except queries.QueryEncoderUnavailable as exc:
            raise ServiceUnavailable(str(exc)) from None
        except queries.QueryRejected as exc:
            raise ValidationError({exc.field: [exc.reason]}) from None


class TextSearchView(_SearchView):
    """Products whose images match a text, e.g. ``?q=red striped dress``."""

    params_class = TextSearchParams

    @extend_schema(parameters=[TextSearchParams], responses={200: SearchResultSerializer(many=True), **SEARCH_ERRORS})
    def get(self, request):
        params = self.params(request.query_params)
        model = self.serving_model()
        return self.search(model, self.encode(model, queries.TEXT, params["q"]), params)


class ImageSearchView(_SearchView):
    """Products that look like an uploaded photo (``image``) or a catalog image (``image_id``)."""

    params_class = ImageSearchParams
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(parameters=[SearchParams], request=ImageSearchParams, responses={200: SearchResultSerializer(many=True), **SEARCH_ERRORS})
    def post(self, request):
        params = self.params({**request.query_params.dict(), **_plain(request.data)})
        model = self.serving_model()
        image = params.get("image_id")
        if image is None:
            return self.search(model, self.encode(model, queries.IMAGE, params["image"]), params)
        # A catalog image is already embedded: its stored vector is the query.
        with self.timed("encode"):
            vector = stored_vector(model, ProductImage.objects.filter(pk=image.pk), field="image_id")
        return self.search(model, vector, params, exclude=[image.product_id])


class ComposedSearchView(_SearchView):
    """"Like this, but ...": a reference product or photo plus a change in words (Pic2Word)."""

    params_class = ComposedSearchParams
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(parameters=[SearchParams], request=ComposedSearchParams,
                   responses={200: SearchResultSerializer(many=True), **SEARCH_ERRORS})
    def post(self, request):
        params = self.params({**request.query_params.dict(), **_plain(request.data)})
        model = self.serving_model()
        payload = {"text": params["text"], "method": params["method"],
                   "template": app_settings.PROMPTS[params["prompt"]] if params.get("prompt") else None}
        image = params.get("image_id")
        exclude = []
        if image is not None:
            if not image.embeddings.filter(model=model, state=ImageEmbedding.State.READY).exists():
                raise ValidationError({params["reference_field"]: [
                    "Its image is not embedded yet; try again once indexing is done."]})
            payload["image_id"] = image.pk
            exclude = [image.product_id]  # the reference itself is not an answer to "like this, but ..."
        else:
            payload["image"] = params["image"]
        return self.search(model, self.encode(model, queries.COMPOSED, payload), params, exclude=exclude)


class SimilarProductsView(_SearchView):
    """"More like this": products similar to one product (which is left out)."""

    params_class = SimilarParams

    @extend_schema(parameters=[SimilarParams], responses={200: SearchResultSerializer(many=True), **SEARCH_ERRORS})
    def get(self, request):
        params = self.params(request.query_params)
        model = self.serving_model()
        product_id = params["product"]
        if not self.get_queryset().filter(pk=product_id).exists():
            raise ValidationError({"product": [f"There is no product with id {product_id}."]})
        with self.timed("encode"):
            vector = stored_vector(model, ProductImage.objects.filter(product_id=product_id), field="product")
        return self.search(model, vector, params, exclude=[product_id])


def stored_vector(model, images, *, field):
    """The stored query vector of ``images``, or a 400 on ``field`` while they are not embedded."""
    try:
        return index.stored_query_vector(model, images)
    except index.NotEmbedded:
        raise ValidationError({field: ["Its images are not embedded yet; try again once indexing is done."]}) from None


def server_timing(timings):
    """Format ``{name: milliseconds}`` as a ``Server-Timing`` header value."""
    return ", ".join(f"{name};dur={value:.2f}" for name, value in timings.items())


def _plain(data):
    """Flatten a QueryDict (one value per key) and keep a dict as it is; refuse any other body."""
    if hasattr(data, "dict"):
        return data.dict()
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Send a JSON object or a form, not a JSON list or value."]})
    return data

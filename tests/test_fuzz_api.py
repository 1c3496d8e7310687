"""Fuzz the API from its own OpenAPI schema (schemathesis): no 5xx, responses as documented."""

import os

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from p2w_search import indexing
from p2w_search.models import ImageEmbedding
from shop_demo.wsgi import application
from tests.factories import ProductFactory, ProductImageFactory, png

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture(autouse=True)
def catalog(db, media):
    """A small embedded catalog, so that searches answer."""
    for i in range(3):
        ProductImageFactory(product=ProductFactory(category="mug"), data=png((80 * i, 40, 200)))
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    # The WSGI app would close the test's connection (and its transaction) after each request;
    # Django's own test client unhooks this the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# CI tries the same examples each run (derandomize); P2W_FUZZ_EXAMPLES=N explores N new random ones
# an operation, for a run of its own that looks for new failures.
EXPLORE = int(os.environ.get("P2W_FUZZ_EXAMPLES", 0))


@schema.parametrize()
@settings(max_examples=EXPLORE or 20, derandomize=not EXPLORE, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_never_fails_with_5xx_and_matches_its_schema(case):
    # Not "positive data acceptance": a well-formed id of a product that does not exist is a
    # documented 400, and multipart file fields cannot be typed as files in OpenAPI's schema.
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance])

"""System checks: configuration a deployment gets wrong before the first search."""

from django.apps import apps
from django.core import checks
from django.db import connections
from django.db.utils import DatabaseError

from p2w_search.conf import app_settings


@checks.register()
def check_settings(app_configs=None, **kwargs):
    from django.conf import settings

    errors = []
    label = getattr(settings, "P2W_SEARCH_PRODUCT_MODEL", None)
    if not label:
        errors.append(checks.Error(
            "P2W_SEARCH_PRODUCT_MODEL is not set.",
            hint="Point it at the shop's product model, e.g. 'catalog.Product'.",
            id="p2w_search.E001",
        ))
        return errors
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        errors.append(checks.Error(f"P2W_SEARCH_PRODUCT_MODEL {label!r} is not an installed model.",
                                   id="p2w_search.E002"))
        return errors
    for name in app_settings.FILTER_FIELDS:
        try:
            model._meta.get_field(name)
        except Exception:
            errors.append(checks.Error(f"P2W_SEARCH['FILTER_FIELDS'] names {name!r}, which {label} does not have.",
                                       id="p2w_search.E003"))
    if "default" not in app_settings.EMBEDDERS:
        errors.append(checks.Error("P2W_SEARCH['EMBEDDERS'] needs a 'default' alias.", id="p2w_search.E004"))
    if app_settings.QUERY_ENCODING not in ("worker", "local"):
        errors.append(checks.Error("P2W_SEARCH['QUERY_ENCODING'] must be 'worker' or 'local'.", id="p2w_search.E005"))
    return errors


@checks.register(checks.Tags.database)
def check_vector_extension(app_configs=None, databases=None, **kwargs):
    errors = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            errors.append(checks.Error("p2w_search needs PostgreSQL with the pgvector extension.",
                                       id="p2w_search.E010"))
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                row = cursor.fetchone()
        except DatabaseError as exc:
            errors.append(checks.Warning(f"Could not check for pgvector: {exc}", id="p2w_search.W011"))
            continue
        if row is None:
            errors.append(checks.Error(
                "The 'vector' extension is not installed in the database.",
                hint="Run the migrations (they create it) as a role allowed to CREATE EXTENSION.",
                id="p2w_search.E011",
            ))
        elif tuple(int(p) for p in row[0].split(".")[:2]) < (0, 8):
            errors.append(checks.Error(
                f"pgvector {row[0]} is too old: iterative index scans need 0.8 or newer.", id="p2w_search.E012"
            ))
    return errors

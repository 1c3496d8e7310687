"""The database: where a router writes the catalog (E029), and pgvector (``--database``, every ``migrate``).

They must not block the command that fixes what they find: before p2w_search's migrations have
run, a missing ``vector`` extension is no error, since the first migration creates it.
"""

from django.apps import apps
from django.core import checks
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import DatabaseError

from p2w_search.conf import app_settings
from p2w_search.vector_extension import MIN_VERSION, create_hint, parse_version

__all__ = ["check_database_routes", "check_vector_extension", "vector_extension_problems"]

_MIN = ".".join(map(str, MIN_VERSION))


@checks.register()
def check_database_routes(app_configs=None, **kwargs):
    """E029: a model that p2w_search writes or joins, which ``DATABASE_ROUTERS`` writes to another database.

    p2w_search works on one database, ``default``: its transactions, locks and raw SQL use that connection, its
    mirrors of the shop's images hold foreign keys to the products, and a search joins the products with their
    vectors in one query. A catalog routed to a second database would have its rows there and their mirrors
    and vectors here, and nothing said so. Reads may still go elsewhere (a replica router, and
    ``SEARCH_DATABASE`` for searches): only where writes go is checked.
    """
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, router

    if not settings.DATABASE_ROUTERS:
        return []
    problems = []
    for label, model in _models_written():
        alias = router.db_for_write(model)
        if alias != DEFAULT_DB_ALIAS:
            problems.append(checks.Error(
                f"DATABASE_ROUTERS writes {label} to the database {alias!r}; p2w_search needs the products, the "
                f"shop's images and its own tables in one database, {DEFAULT_DB_ALIAS!r}.",
                hint=f"Route writes of {label} to {DEFAULT_DB_ALIAS!r} (reads may go to a replica; searches read "
                     "P2W_SEARCH['SEARCH_DATABASE']).",
                id="p2w_search.E029"))
    return problems


def _models_written():
    """``(label, model)`` of the product model, the shop's image model and p2w_search's models, those that resolve
    (the settings checks report the others)."""
    from django.conf import settings

    labels = [getattr(settings, "P2W_SEARCH_PRODUCT_MODEL", None)]
    if isinstance(app_settings.IMAGE_MODEL, dict):
        labels.append(app_settings.IMAGE_MODEL.get("MODEL"))
    found = []
    for label in labels:
        try:
            found.append((label, apps.get_model(label)))
        except (LookupError, ValueError, TypeError, AttributeError):
            continue
    own = apps.get_app_config("p2w_search").get_models()
    return [*found, *((model._meta.label, model) for model in own)]


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
                installed = cursor.fetchone()
                cursor.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
                available = cursor.fetchone()
            recorder = MigrationRecorder(connection)
            migrated = recorder.has_table() and recorder.migration_qs.filter(app="p2w_search").exists()
        except DatabaseError as exc:
            errors.append(checks.Warning(f"Could not check for pgvector: {exc}", id="p2w_search.W011"))
            continue
        errors.extend(vector_extension_problems(
            database=connection.settings_dict["NAME"], installed=installed and installed[0],
            available=available and available[0], migrated=migrated,
        ))
    return errors


def vector_extension_problems(*, database, installed, available, migrated):
    """The check's findings for one PostgreSQL database, from what it reports.

    ``installed``: the extension's version in the database, or None; ``available``: the
    version the server would create, or None when the server has no pgvector; ``migrated``:
    whether p2w_search's migrations have run there (the first one creates the extension).
    """
    if installed is None and available is None:
        return [checks.Error(
            f"The PostgreSQL server of database {database!r} does not have pgvector, so the 'vector' extension "
            "cannot be created.",
            hint=f"Install pgvector {_MIN} or newer on the server (e.g. the pgvector/pgvector image or the "
                 "postgresql-NN-pgvector package), then run the migrations.",
            id="p2w_search.E011",
        )]
    if installed is None and migrated:
        return [checks.Error(
            f"The 'vector' extension is not installed in database {database!r}, though p2w_search's migrations "
            "have run there.",
            hint=create_hint(database),
            id="p2w_search.E011",
        )]
    version = installed or available  # not installed yet: the first migration will create this one
    if parse_version(version) >= MIN_VERSION:
        return []
    if installed:
        where, remedy = "in", "then a superuser runs ALTER EXTENSION vector UPDATE; in that database"
    else:
        where, remedy = "offered by the server of", "then run the migrations"
    return [checks.Error(
        f"pgvector {version} {where} database {database!r} is too old: iterative index scans need {_MIN} or newer.",
        hint=f"Install pgvector {_MIN} or newer on the server; {remedy}.",
        id="p2w_search.E012",
    )]

"""System checks: configuration a deployment gets wrong before the first search.

``manage.py check`` runs the settings checks; the database ones (``--database``, and every
``migrate``) look at pgvector. They must not block the command that fixes what they find:
before p2w_search's migrations have run, a missing ``vector`` extension is no error, since
the first migration creates it.
"""

from django.apps import apps
from django.core import checks
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import DatabaseError

from p2w_search.conf import P2WImproperlyConfigured, app_settings
from p2w_search.embedders.base import image_weight
from p2w_search.vector_extension import MIN_VERSION, create_hint, parse_version

__all__ = ["check_settings", "check_vector_extension", "vector_extension_problems"]

_MIN = ".".join(map(str, MIN_VERSION))


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
    errors.extend(_filter_problems(model, label))
    if "default" not in app_settings.EMBEDDERS:
        errors.append(checks.Error("P2W_SEARCH['EMBEDDERS'] needs a 'default' alias.", id="p2w_search.E004"))
    for alias, params in app_settings.EMBEDDERS.items():
        try:
            image_weight(alias, params)
        except ValueError as exc:
            errors.append(checks.Error(str(exc), id="p2w_search.E016"))
    if app_settings.QUERY_ENCODING not in ("worker", "local"):
        errors.append(checks.Error("P2W_SEARCH['QUERY_ENCODING'] must be 'worker' or 'local'.", id="p2w_search.E005"))
    errors.extend(_upload_problems())
    if app_settings.IMAGE_MODEL:
        from p2w_search import shop_images

        try:
            cfg = shop_images.config()
        except P2WImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="p2w_search.E015"))
        else:
            errors.extend(_file_name_problems(cfg))
    return errors


def _file_name_problems(cfg):
    """A shop's file field that holds longer names than the mirror's ProductImage.file."""
    from p2w_search.models import FILE_NAME_LENGTH

    field = cfg["model"]._meta.get_field(cfg["file"])
    length = getattr(field, "max_length", None)
    if length is None or length <= FILE_NAME_LENGTH:
        return []
    return [checks.Warning(
        f"{cfg['model']._meta.label}.{cfg['file']} holds names of up to {length} characters; p2w_search's "
        f"mirror of an image holds {FILE_NAME_LENGTH}.",
        hint="An image with a longer name is not searched: each sync logs it and counts it as failed.",
        id="p2w_search.W012")]


def _filter_problems(model, label):
    from p2w_search.api.filters import filter_specs, resolve_path

    if app_settings.FILTERSET_CLASS:
        return []
    try:
        specs = filter_specs()
    except P2WImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="p2w_search.E003")]
    problems = []
    for _, paths, _ in specs:
        for path in paths:
            try:
                resolve_path(model, path)
            except P2WImproperlyConfigured as exc:
                problems.append(checks.Error(str(exc), id="p2w_search.E003"))
    return problems


def _upload_problems():
    """E013: uploads are mounted but cannot run; E014: their storage is missing or served publicly."""
    from pathlib import Path

    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("p2w_uploads:import-list")
    except NoReverseMatch:
        return []  # this shop takes no catalog uploads
    problems = []
    if not app_settings.IMPORT_SERIALIZER:
        problems.append(checks.Error(
            "The upload URLs (p2w_search.api.upload_urls) are mounted, but P2W_SEARCH['IMPORT_SERIALIZER'] is not set.",
            hint="Set it to the serializer of one catalog row, or do not include p2w_search.api.upload_urls.",
            id="p2w_search.E013"))
    from p2w_search.uploads.storage import upload_backend

    try:
        backend = upload_backend()
    except P2WImproperlyConfigured as exc:
        return [*problems, checks.Error(str(exc), id="p2w_search.E014")]
    location = getattr(backend, "location", None)
    media = getattr(settings, "MEDIA_ROOT", None)
    if location and media and Path(location).resolve().is_relative_to(Path(media).resolve()):
        problems.append(checks.Error(
            f"Merchants' uploads (STORAGES[{app_settings.UPLOAD_STORAGE!r}]) are kept in {location}, inside "
            "MEDIA_ROOT, which is served publicly.", hint="Give the upload storage a folder outside MEDIA_ROOT.",
            id="p2w_search.E014"))
    return problems


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

"""The system checks that ``manage.py check`` runs: each id, on the setting or database state that raises it.

The settings checks run here with overridden settings; the database states that need a
database of their own (fresh, migrated without the extension, unreachable, not PostgreSQL)
are in tests/test_migrate.py, through ``manage.py`` as a user runs it.
"""

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from p2w_search.checks import check_settings, check_vector_extension, vector_extension_problems


def found(messages):
    """(id, message) of each check message: what a user reads."""
    return [(message.id, message.msg) for message in messages]


def test_the_test_settings_pass_every_check_on_the_migrated_database(db):
    assert check_settings() == []
    assert check_vector_extension(databases=["default"]) == []
    call_command("check", databases=["default"])  # raises SystemCheckError on any error


def test_a_missing_product_model_setting_is_E001(settings):
    del settings.P2W_SEARCH_PRODUCT_MODEL
    messages = check_settings()
    assert found(messages) == [("p2w_search.E001", "P2W_SEARCH_PRODUCT_MODEL is not set.")]
    assert messages[0].hint == "Point it at the shop's product model, e.g. 'catalog.Product'."


@pytest.mark.parametrize("label", ["catalog.Nope", "no_such_app.Product", "Product"])
def test_a_product_model_that_is_not_installed_is_E002(settings, label):
    settings.P2W_SEARCH_PRODUCT_MODEL = label
    assert found(check_settings()) == [
        ("p2w_search.E002", f"P2W_SEARCH_PRODUCT_MODEL {label!r} is not an installed model.")]


def test_a_filter_field_the_product_does_not_have_is_E003(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "FILTER_FIELDS": ["category", "colour", "price", "size"]}
    assert found(check_settings()) == [
        ("p2w_search.E003", "P2W_SEARCH['FILTER_FIELDS'] names 'colour', which catalog.Product does not have."),
        ("p2w_search.E003", "P2W_SEARCH['FILTER_FIELDS'] names 'size', which catalog.Product does not have."),
    ]


def test_embedders_without_a_default_alias_is_E004(settings):
    embedders = settings.P2W_SEARCH["EMBEDDERS"]
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "EMBEDDERS": {"next": embedders["next"]}}
    assert found(check_settings()) == [("p2w_search.E004", "P2W_SEARCH['EMBEDDERS'] needs a 'default' alias.")]


@pytest.mark.parametrize("weight", [-0.5, "0.5", float("nan"), True])
def test_an_image_weight_that_is_not_a_number_of_at_least_0_is_E016(settings, weight):
    embedders = settings.P2W_SEARCH["EMBEDDERS"]
    settings.P2W_SEARCH = {**settings.P2W_SEARCH,
                           "EMBEDDERS": {**embedders, "next": {**embedders["next"], "IMAGE_WEIGHT": weight}}}
    assert found(check_settings()) == [(
        "p2w_search.E016", "P2W_SEARCH['EMBEDDERS']['next']['IMAGE_WEIGHT'] must be a number of at least 0 "
                           f"(0 makes pic2word_plus_image the paper's pic2word), not {weight!r}.")]


def test_an_unknown_query_encoding_is_E005(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "gpu"}
    assert found(check_settings()) == [
        ("p2w_search.E005", "P2W_SEARCH['QUERY_ENCODING'] must be 'worker' or 'local'.")]


def test_manage_py_check_reports_a_wrong_setting_with_its_id(settings):
    """The checks are registered: ``check`` fails on them, as the README promises."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_ENCODING": "gpu", "FILTER_FIELDS": ["colour"]}
    with pytest.raises(SystemCheckError) as failed:
        call_command("check")
    report = str(failed.value)
    assert "?: (p2w_search.E003) P2W_SEARCH['FILTER_FIELDS'] names 'colour', which catalog.Product" in report
    assert "?: (p2w_search.E005) P2W_SEARCH['QUERY_ENCODING'] must be 'worker' or 'local'." in report


# What the database check concludes from what a database reports (its queries run in tests/test_migrate.py).

def test_a_fresh_database_on_a_server_with_pgvector_is_no_error():
    """Before the first migrate: the first migration creates the extension, so the check must not block it."""
    assert vector_extension_problems(database="shop", installed=None, available="0.8.5", migrated=False) == []


def test_a_migrated_database_with_the_extension_is_no_error():
    assert vector_extension_problems(database="shop", installed="0.8.5", available="0.8.5", migrated=True) == []
    # Versions compare as numbers: 0.10 is newer than 0.8.
    assert vector_extension_problems(database="shop", installed="0.10.0", available="0.10.0", migrated=True) == []


def test_a_server_without_pgvector_is_E011_with_how_to_install_it():
    problems = vector_extension_problems(database="shop", installed=None, available=None, migrated=False)
    assert found(problems) == [("p2w_search.E011", "The PostgreSQL server of database 'shop' does not have "
                                                   "pgvector, so the 'vector' extension cannot be created.")]
    assert problems[0].hint.startswith("Install pgvector 0.8 or newer on the server")


def test_a_missing_extension_after_the_migrations_is_E011_with_what_a_superuser_runs():
    problems = vector_extension_problems(database="shop", installed=None, available="0.8.5", migrated=True)
    assert problems == [Error(
        "The 'vector' extension is not installed in database 'shop', though p2w_search's migrations have run there.",
        hint="Ask a superuser to run CREATE EXTENSION vector; in database 'shop' "
             "(psql -d shop -c 'CREATE EXTENSION vector;').",
        id="p2w_search.E011",
    )]


def test_an_old_pgvector_is_E012():
    installed = vector_extension_problems(database="shop", installed="0.7.4", available="0.8.5", migrated=True)
    assert found(installed) == [("p2w_search.E012", "pgvector 0.7.4 in database 'shop' is too old: iterative index "
                                                    "scans need 0.8 or newer.")]
    assert "ALTER EXTENSION vector UPDATE" in installed[0].hint
    offered = vector_extension_problems(database="shop", installed=None, available="0.7.0", migrated=False)
    assert found(offered) == [("p2w_search.E012", "pgvector 0.7.0 offered by the server of database 'shop' is too "
                                                  "old: iterative index scans need 0.8 or newer.")]


def test_upload_urls_without_an_import_serializer_are_E013(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_SERIALIZER": None}
    messages = check_settings()
    assert found(messages) == [("p2w_search.E013", "The upload URLs (p2w_search.api.upload_urls) are mounted, but "
                                                   "P2W_SEARCH['IMPORT_SERIALIZER'] is not set.")]
    assert messages[0].hint == ("Set it to the serializer of one catalog row, or do not include "
                                "p2w_search.api.upload_urls.")


def test_an_upload_storage_alias_that_storages_lacks_is_E014(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "UPLOAD_STORAGE": "merchant_files"}
    assert found(check_settings()) == [
        ("p2w_search.E014", "STORAGES has no 'merchant_files' storage for merchants' uploads "
                            "(P2W_SEARCH['UPLOAD_STORAGE']): add one that is never served publicly, e.g. a "
                            "FileSystemStorage outside MEDIA_ROOT.")]


def test_an_upload_storage_inside_media_root_is_E014(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "p2w_uploads": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "media" / "uploads")}}}
    messages = check_settings()
    assert found(messages) == [
        ("p2w_search.E014", f"Merchants' uploads (STORAGES['p2w_uploads']) are kept in {tmp_path / 'media' / 'uploads'}, "
                            "inside MEDIA_ROOT, which is served publicly.")]
    assert messages[0].hint == "Give the upload storage a folder outside MEDIA_ROOT."


def test_an_upload_storage_beside_media_root_is_no_error(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "p2w_uploads": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "media-uploads")}}}  # a sibling whose name starts alike
    assert check_settings() == []


@pytest.mark.parametrize(("image_model", "message"), [
    ({"FILE": "file"}, "P2W_SEARCH['IMAGE_MODEL'] needs 'MODEL', the shop's image model as 'app_label.ModelName'."),
    ({"MODEL": "catalog.Nope"}, "P2W_SEARCH['IMAGE_MODEL'] needs 'MODEL', the shop's image model as "
                                "'app_label.ModelName'."),
    ({"MODEL": "p2w_search.ProductImage", "FILE": "picture"},
     "P2W_SEARCH['IMAGE_MODEL']['FILE'] is 'picture', which p2w_search.ProductImage does not have."),
    ({"MODEL": "p2w_search.ProductImage", "FILE": "file", "ORDER": "display_order"},
     "P2W_SEARCH['IMAGE_MODEL']['ORDER'] is 'display_order', which p2w_search.ProductImage does not have."),
])
def test_a_shop_image_model_the_setting_cannot_use_is_E015(settings, image_model, message):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": image_model}
    assert found(check_settings()) == [("p2w_search.E015", message)]


@pytest.mark.parametrize("length", [1024, 1025])
def test_a_shop_file_field_longer_than_the_mirrors_is_W012(settings, monkeypatch, length):
    from p2w_search.models import ProductImage

    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": {"MODEL": "p2w_search.ProductImage", "FILE": "file"}}
    monkeypatch.setattr(ProductImage._meta.get_field("file"), "max_length", length)  # as a shop's field might be
    expected = [] if length == 1024 else [(
        "p2w_search.W012", "p2w_search.ProductImage.file holds names of up to 1025 characters; p2w_search's mirror "
                           "of an image holds 1024.")]
    assert found(check_settings()) == expected

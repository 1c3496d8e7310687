"""The system checks that ``manage.py check`` runs: each id, on the setting or database state that raises it.

The settings checks run here with overridden settings; the database states that need a
database of their own (fresh, migrated without the extension, unreachable, not PostgreSQL)
are in tests/test_migrate.py, through ``manage.py`` as a user runs it.
"""

import sys

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
        ("p2w_search.E014", "STORAGES has no 'merchant_files' storage (P2W_SEARCH['UPLOAD_STORAGE']), where "
                            "merchants' uploads are kept: add one that is never served publicly, e.g. a "
                            "FileSystemStorage outside MEDIA_ROOT, or set P2W_SEARCH['UPLOAD_STORAGE'] to the alias "
                            "of one.")]


def test_an_upload_storage_inside_media_root_is_E014(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "p2w_uploads": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "media" / "uploads")}}}
    messages = check_settings()
    assert found(messages) == [
        ("p2w_search.E014", f"Merchants' uploads (STORAGES['p2w_uploads']) are kept in "
                            f"{tmp_path / 'media' / 'uploads'}, inside MEDIA_ROOT, which is served publicly.")]
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


@pytest.mark.parametrize(("key", "message"), [
    ("PHOTO_KEEP_SECOND", "P2W_SEARCH has the key 'PHOTO_KEEP_SECOND', which is no setting of p2w_search: it is "
                          "ignored; did you mean 'PHOTO_KEEP_SECONDS'?"),
    ("ANON_SEARCH_RATES", "P2W_SEARCH has the key 'ANON_SEARCH_RATES', which is no setting of p2w_search: it is "
                          "ignored; did you mean 'ANON_SEARCH_RATE'?"),
    ("COLOUR_SCHEME", "P2W_SEARCH has the key 'COLOUR_SCHEME', which is no setting of p2w_search: it is ignored."),
])
def test_a_key_p2w_search_does_not_read_is_W013_with_the_closest_setting(settings, key, message):
    """A typo is ignored at run time: the default applies, and nothing else would say so."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, key: 60}
    assert found(check_settings()) == [("p2w_search.W013", message)]


@pytest.mark.parametrize(("name", "value", "must_be"), [
    # What a search did before the check: PAGE_SIZE 0 or None, EF_SEARCH -1, 0 or 2000, DEFAULT_K "20": 500.
    ("PAGE_SIZE", 0, "a whole number of at least 1"),
    ("PAGE_SIZE", None, "a whole number of at least 1"),
    ("PAGE_SIZE", "20", "a whole number of at least 1"),
    ("EF_SEARCH", -1, "a whole number from 1 to 1000, pgvector's range for hnsw.ef_search"),
    ("EF_SEARCH", 2000, "a whole number from 1 to 1000, pgvector's range for hnsw.ef_search"),
    ("DEFAULT_K", "20", "a whole number of at least 1"),
    ("DEFAULT_K", 0, "a whole number of at least 1"),  # every search answered no products
    ("MAX_K", True, "a whole number of at least 1"),
    ("MAX_IMAGE_BYTES", 10.5 * 1024**2, "a whole number of at least 1"),  # read(MAX_IMAGE_BYTES + 1) takes no float
    ("MAX_IMAGE_ASPECT", float("inf"), "a number of at least 1"),
    ("QUERY_TIMEOUT", 0, "a number above 0 (seconds)"),
    ("PHOTO_KEEP_SECONDS", None, "a number above 0"),
    ("UPLOAD_RETENTION_DAYS", -1, "a number of at least 0"),
    ("IMPORT_ERRORS_SHOWN", -1, "a whole number of at least 0"),
    # A share of 20, meant as 20 %, let a full sync unlist 90 of 100 products unconfirmed.
    ("FULL_SYNC_MAX_UNLIST_SHARE", 20, "a number from 0 to 1 (a share: 0.2 is 20 %)"),
    ("FULL_SYNC_MAX_UNLIST_SHARE", "20%", "a number from 0 to 1 (a share: 0.2 is 20 %)"),
    # Refused at the upload (P2WImproperlyConfigured, a 500) before the check.
    ("IMPORT_MAX_WAITING", "5", "a whole number of at least 1, or None for no limit"),
    ("IMPORT_MAX_WAITING", 0, "a whole number of at least 1, or None for no limit"),
    ("IMAGE_THREADS", "4", "a whole number of at least 1, or None for as many as the process's cores, at most 4"),
    ("FILTER_EXACT_ROWS", -1, "a whole number of at least 0, or None (as 0: always walk the graph)"),
    ("HNSW_M", 1, "a whole number from 2 to 100, pgvector's range for m"),
    ("HNSW_EF_CONSTRUCTION", 2000, "a whole number from 4 to 1000, pgvector's range for ef_construction"),
])
def test_a_number_of_the_wrong_type_or_range_is_E017(settings, name, value, must_be):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, name: value}
    assert found(check_settings()) == [("p2w_search.E017", f"P2W_SEARCH[{name!r}] must be {must_be}, not {value!r}.")]


@pytest.mark.parametrize(("name", "value"), [
    ("IMPORT_MAX_WAITING", None), ("IMAGE_THREADS", None), ("FILTER_EXACT_ROWS", None), ("FILTER_EXACT_ROWS", 0),
    ("IMPORT_ERRORS_SHOWN", 0), ("FULL_SYNC_MAX_UNLIST_SHARE", 0), ("FULL_SYNC_MAX_UNLIST_SHARE", 1),
    ("QUERY_TIMEOUT", 2), ("MAX_IMAGE_ASPECT", 1), ("EF_SEARCH", 1000), ("PAGE_SIZE", 500),  # one page: no harm
    ("SEARCH_HEALTH_CACHE", None), ("FLOWER_URL", "http://flower:5555/"), ("ANON_SEARCH_RATE", None),
    ("ANON_SEARCH_RATE", "120/minute"), ("ANON_SEARCH_RATE", "1/d"),
])
def test_values_the_settings_allow_are_no_error(settings, name, value):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, name: value}
    assert check_settings() == []


def test_a_default_k_above_max_k_is_E018(settings):
    """Before the check, a search without k returned DEFAULT_K products, more than MAX_K lets anyone ask for."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "DEFAULT_K": 500, "MAX_K": 200}
    assert found(check_settings()) == [(
        "p2w_search.E018", "P2W_SEARCH['DEFAULT_K'] is 500, more than P2W_SEARCH['MAX_K'] (200): a search that asks "
                           "for no k would return more products than any search may ask for.")]


def test_an_ef_construction_below_twice_m_is_E018(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "HNSW_M": 32, "HNSW_EF_CONSTRUCTION": 40}
    assert found(check_settings()) == [(
        "p2w_search.E018", "P2W_SEARCH['HNSW_EF_CONSTRUCTION'] is 40, less than twice P2W_SEARCH['HNSW_M'] (32): "
                           "pgvector builds no HNSW index with ef_construction < 2 * m.")]


def test_numbers_of_the_wrong_type_are_not_compared_as_well(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "DEFAULT_K": "20", "HNSW_M": None}
    assert [id for id, _ in found(check_settings())] == ["p2w_search.E017", "p2w_search.E017"]


@pytest.mark.parametrize("rate", ["120 per min", "120/x", "abc/min", "120/", 120, "0/min", "-5/h"])
def test_an_anonymous_search_rate_drf_cannot_parse_or_that_allows_none_is_E019(settings, rate):
    """Before the check each search was a 500 (or, at 0/min, a 429 for every anonymous shopper)."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "ANON_SEARCH_RATE": rate}
    assert found(check_settings()) == [(
        "p2w_search.E019", "P2W_SEARCH['ANON_SEARCH_RATE'] must be a rate of at least 1 search per second, minute, "
                           f"hour or day (e.g. '120/min'), or None for no limit, not {rate!r}.")]


@pytest.mark.parametrize("rate", ["10 per hour", "0/hour", "ten/h"])
def test_a_failed_login_rate_drf_cannot_parse_is_E019(settings, rate):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "LOGIN_FAILURE_RATE": rate}
    assert found(check_settings()) == [(
        "p2w_search.E019", "P2W_SEARCH['LOGIN_FAILURE_RATE'] must be a rate of at least 1 failed login per second, "
                           f"minute, hour or day (e.g. '10/hour'), or None for no limit, not {rate!r}.")]


@pytest.mark.parametrize(("name", "path", "why"), [
    ("PRODUCT_SERIALIZER", "shop_demo.catalog.serializers.ProductSerialiser",
     'Module "shop_demo.catalog.serializers" does not define a "ProductSerialiser" attribute/class'),
    ("PRODUCT_QUERYSET", "shop_demo.catalog.nowhere.prepare", "No module named 'shop_demo.catalog.nowhere'"),
    ("FILTERSET_CLASS", "ProductFilterSet", "ProductFilterSet doesn't look like a module path"),
    ("IMPORT_SERIALIZER", "shop_demo.catalog.imports.RowSerializer",
     'Module "shop_demo.catalog.imports" does not define a "RowSerializer" attribute/class'),
])
def test_a_dotted_path_that_cannot_be_imported_is_E020(settings, name, path, why):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, name: path}
    assert found(check_settings()) == [
        ("p2w_search.E020", f"P2W_SEARCH[{name!r}] is {path!r}, which cannot be imported: {why}")]


def test_a_product_queryset_given_as_a_callable_is_no_error(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PRODUCT_QUERYSET": lambda products: products}
    assert check_settings() == []


def _import_serializer(monkeypatch, *, drop_methods=(), drop_fields=()):
    """The dotted path of a shop's row serializer: the demo's, less the class methods and fields named."""
    from shop_demo.catalog.imports import ProductImportSerializer

    serializer = type("ShopRows", (ProductImportSerializer,), dict.fromkeys(drop_methods))
    fields = serializer.get_fields
    monkeypatch.setattr(serializer, "get_fields", lambda self: {
        name: field for name, field in fields(self).items() if name not in drop_fields})
    monkeypatch.setattr(sys.modules[__name__], "ShopRows", serializer, raising=False)
    return f"{__name__}.ShopRows"


def test_an_import_serializer_that_is_not_a_serializer_is_E021(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_SERIALIZER": "shop_demo.catalog.models.Product"}
    messages = check_settings()
    assert found(messages) == [("p2w_search.E021", "P2W_SEARCH['IMPORT_SERIALIZER'] (shop_demo.catalog.models.Product) "
                                                   "is not a DRF serializer class.")]
    assert messages[0].hint == "Its contract is in the docstring of p2w_search/uploads/importer.py."


@pytest.mark.parametrize(("methods", "fields", "lacks"), [
    (["unlist"], [], "the class method unlist()"),
    (["merchant_for", "listed_skus"], ["images"],
     "the class methods merchant_for(), listed_skus(); the field 'images'"),
    ([], ["sku", "images"], "the fields 'sku', 'images'"),
])
def test_an_import_serializer_without_the_contracts_methods_or_fields_is_E021(settings, monkeypatch, methods, fields,
                                                                              lacks):
    path = _import_serializer(monkeypatch, drop_methods=methods, drop_fields=fields)
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_SERIALIZER": path}
    assert found(check_settings()) == [
        ("p2w_search.E021", f"P2W_SEARCH['IMPORT_SERIALIZER'] ({path}) lacks what an import needs: {lacks}.")]


def test_the_demo_import_serializer_with_the_whole_contract_is_no_error(settings, monkeypatch):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_SERIALIZER": _import_serializer(monkeypatch)}
    assert check_settings() == []


@pytest.mark.parametrize(("search_filter", "message"), [
    # Each was a 500 on every search before the check.
    (None, "P2W_SEARCH['SEARCH_FILTER'] must be a dict of field lookups, e.g. {'listed': True}, not None."),
    ("listed", "P2W_SEARCH['SEARCH_FILTER'] must be a dict of field lookups, e.g. {'listed': True}, not 'listed'."),
    ({"published": True}, "P2W_SEARCH['SEARCH_FILTER'] {'published': True} cannot filter catalog.Product: Cannot "
                          "resolve keyword 'published' into field. Choices are: "),  # then the product's fields
    # Django's reason without the brackets of a ValidationError's list (it read "['“x” value must be ...']").
    ({"price": "x"}, "P2W_SEARCH['SEARCH_FILTER'] {'price': 'x'} cannot filter catalog.Product: “x” value must be a "
                     "decimal number."),
])
def test_a_search_filter_the_product_model_cannot_take_is_E022(settings, search_filter, message):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "SEARCH_FILTER": search_filter}
    ((check_id, text),) = found(check_settings())
    assert check_id == "p2w_search.E022"
    assert text.startswith(message) if message.endswith("Choices are: ") else text == message


@pytest.mark.parametrize(("name", "value", "where"), [
    ("SEARCH_DATABASE", "replica1", "DATABASES"),  # every search was a 500
    ("SEARCH_HEALTH_CACHE", "health", "CACHES"),  # the admin's search health stayed empty, a log line said why
    ("PROMPT", "photo", "P2W_SEARCH['PROMPTS']"),
])
def test_a_name_its_registry_lacks_is_E023(settings, name, value, where):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, name: value}
    assert found(check_settings()) == [("p2w_search.E023", f"P2W_SEARCH[{name!r}] is {value!r}, which {where} does "
                                                           "not have.")]


@pytest.mark.parametrize(("template", "wrong"), [
    # Each failed every composed search with it (no '*'), or composed without the shopper's words, or twice.
    ("a photo of {text}", "it has 0 '*' (the photo's pseudo word), where it needs one"),
    ("a photo of *", "it has 0 '{text}' (the shopper's words), where it needs one"),
    ("* , {text} and * , {text}", "it has 2 '*' (the photo's pseudo word), where it needs one; it has 2 '{text}' "
                                  "(the shopper's words), where it needs one"),
    ("a photo of * , {txt}", "it has 0 '{text}' (the shopper's words), where it needs one; {txt} is no placeholder "
                             "('{text}' is the only one)"),
])
def test_a_prompt_template_without_one_star_and_one_text_is_E024(settings, template, wrong):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PROMPTS": {**settings.P2W_SEARCH["PROMPTS"], "mine": template}}
    messages = check_settings()
    assert found(messages) == [("p2w_search.E024", f"P2W_SEARCH['PROMPTS']['mine'] is {template!r}: {wrong}.")]
    assert messages[0].hint == "For example 'a photo of * , {text}'."


@pytest.mark.parametrize("prompts", [None, {}, "a photo of * , {text}"])
def test_prompts_that_are_no_dict_of_templates_are_E024(settings, prompts):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PROMPTS": prompts}
    assert found(check_settings()) == [
        ("p2w_search.E023", "P2W_SEARCH['PROMPT'] is 'paper', which P2W_SEARCH['PROMPTS'] does not have."),
        ("p2w_search.E024", "P2W_SEARCH['PROMPTS'] must be a dict of prompt templates by name, e.g. "
                            f"{{'paper': 'a photo of * , {{text}}'}}, not {prompts!r}.")]


@pytest.mark.parametrize("backend", ["p2w_search.embedders.open_clip.OpenCLIPEmbedder", "no_such_package.Embedder",
                                     "OpenCLIPEmbedder", None])
def test_an_embedder_backend_in_no_module_is_E020(settings, backend):
    embedders = settings.P2W_SEARCH["EMBEDDERS"]
    settings.P2W_SEARCH = {**settings.P2W_SEARCH,
                           "EMBEDDERS": {**embedders, "next": {**embedders["next"], "BACKEND": backend}}}
    assert found(check_settings()) == [
        ("p2w_search.E020", f"P2W_SEARCH['EMBEDDERS']['next']['BACKEND'] is {backend!r}, which names no module that "
                            "can be imported.")]


@pytest.mark.parametrize(("name", "value"), [("BULK_QUEUE", ""), ("QUERY_QUEUE", None), ("QUERY_QUEUE", 7)])
def test_a_queue_name_that_is_no_text_is_E025(settings, name, value):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, name: value}
    assert found(check_settings()) == [
        ("p2w_search.E025", f"P2W_SEARCH[{name!r}] must be a queue's name (text), not {value!r}.")]


def test_one_queue_for_bulk_work_and_queries_is_W015(settings):
    queue = settings.P2W_SEARCH["BULK_QUEUE"]
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "QUERY_QUEUE": queue}
    assert found(check_settings()) == [
        ("p2w_search.W015", f"P2W_SEARCH['BULK_QUEUE'] and P2W_SEARCH['QUERY_QUEUE'] are both {queue!r}: a shopper's "
                            "query waits behind every embedding batch sent before it (a catalog's upload: minutes).")]


@pytest.mark.parametrize("memory", ["1 GiB", "1gb", "512KB", "-1GB", "", None, 1.5, 1023, "1000B", "3TB"])
def test_an_index_build_memory_postgresql_cannot_take_is_E026(settings, memory):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "INDEX_BUILD_MEMORY": memory}
    assert found(check_settings()) == [
        ("p2w_search.E026", f"P2W_SEARCH['INDEX_BUILD_MEMORY'] is {memory!r}: PostgreSQL's maintenance_work_mem "
                            "takes from 1MB to 2TB, as a number and a unit (B, kB, MB, GB or TB, in that case; no "
                            "unit: kB).")]


@pytest.mark.parametrize("memory", ["1GB", "64MB", " 2 GB ", "1.5GB", "1024", 1048576, "1048576B", "2047GB"])
def test_an_index_build_memory_postgresql_takes_is_no_error(settings, memory):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "INDEX_BUILD_MEMORY": memory}
    assert check_settings() == []


def test_a_shop_whose_only_template_backend_is_jinja2_is_E027(settings):
    """The shopper's pieces and the merchant pages are Django templates: with Jinja2 alone, each was a 500."""
    settings.TEMPLATES = [{"BACKEND": "django.template.backends.jinja2.Jinja2", "DIRS": [], "APP_DIRS": True,
                           "OPTIONS": {"environment": "p2w_search.jinja.environment"}}]
    assert found(check_settings()) == [
        ("p2w_search.E027", "No template backend finds the app's templates (p2w_search/like_this/product.html), "
                            "which are Django templates.")]

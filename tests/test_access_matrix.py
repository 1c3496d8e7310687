"""Who may do what, URL by URL: every pattern of the demo's URL conf, each role, each method it accepts.

"Anyone can read; only a merchant changes its own catalog; only staff manage the index." The
table below (MATRIX) states the answer each role gets from every URL pattern of
``shop_demo.urls``, on real objects: merchant A's import job with its files, A's products (one
unlisted), the index's model, image and embedding rows. Merchant B always asks for A's
objects, so an object-level check that is missing shows as a 200 where the table says 403/404.
A URL pattern the table does not list fails ``test_every_url_pattern_has_its_access_rule``: a
new endpoint cannot ship without its rule. Then the less obvious: deleted merchants,
deactivated users and tokens, acting for a merchant, CSRF, file names, shoppers' photos.
"""

import itertools
import logging
from collections import namedtuple

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from p2w_search.merchant.access import SESSION_KEY
from p2w_search.models import ImageEmbedding, ImportJob, ProductImage
from p2w_search.uploads import importer
from shop_demo.catalog.models import Product
from tests.factories import (
    MerchantFactory,
    ProductFactory,
    ProductImageFactory,
    embed_catalog,
    png,
    post_catalog,
    uploaded,
)
from tests.hostile import BLUE, HEADER, RED, zip_bytes
from tests.hostile import row as manifest_row
from tests.test_merchant_pages import files, text

# Only these may ever see what A keeps to itself (its upload files, its unlisted product): A, and staff with the
# permissions to see it. Every other role's answer, whatever its status, must not contain these words.
SECRETS = ("A-REJECTED-SECRET", "A-UNLISTED-SECRET")
SEE_A_PRIVATE = {"a", "a_token", "index_staff", "superuser"}

ROLES = ("anon", "shopper", "a", "a_token", "b", "b_token", "staff", "index_staff", "superuser")
# anon: nobody logged in. shopper: a plain user. a / a_token: merchant A's user, by session / by API token.
# b / b_token: merchant B's user asking for A's objects. staff: is_staff, no permission. index_staff: is_staff with
# every p2w_search permission (none of the shop's). superuser.

# An expected answer: a status, or a redirect (301/302/303) to this path ("{url}": the URL asked).
LOGIN = "/admin/login/"  # the admin's login page, as admin_view sends a visitor who is not staff
ADMIN = "/admin/"
M_LOGIN = "/merchant/login/"
M_HOME = "/merchant/"
ACT = "/merchant/act-for/"  # staff who have not chosen a merchant (or may act for none) choose first
SAME = "{url}"
CHANGE = "{url}change/"
OBJECT = "{object}change/"  # the change page of the object whose page was asked (its delete page, say)
LIST = "{list}"  # the admin list of the model whose page was asked (a saved change form, an action run)
PHOTO = "/?photo="  # the kept photo's results
ICON = "/static/storefront/favicon.svg"

Row = namedtuple("Row", "route method target expected")

# fmt: off
MATRIX = [
    # route (as get_resolver() lists it), method, target (request_for)
    #   (anon     shopper  a        a_token  b        b_token  staff    idx      superuser)
    # --- the storefront: anyone reads, any shopper searches by photo
    Row("", "GET", "home",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("", "POST", "photo",
        (PHOTO,   PHOTO,   PHOTO,   PHOTO,   PHOTO,   PHOTO,   PHOTO,   PHOTO,   PHOTO)),
    Row("product/<int:pk>/", "GET", "a_listed",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("product/<int:pk>/", "POST", "a_listed",
        (405,     405,     405,     405,     405,     405,     405,     405,     405)),
    # --- the search API: public reads
    Row("api/search/text/", "GET", "text_search",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("api/search/text/", "POST", "text_search",
        (405,     405,     405,     405,     405,     405,     405,     405,     405)),
    Row("api/search/image/", "POST", "image_search",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("api/search/image/", "GET", "image_search",
        (405,     405,     405,     405,     405,     405,     405,     405,     405)),
    Row("api/search/composed/", "POST", "composed",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("api/search/composed/", "GET", "composed",
        (405,     405,     405,     405,     405,     405,     405,     405,     405)),
    Row("api/search/similar/", "GET", "similar",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("api/search/similar/", "POST", "similar",
        (405,     405,     405,     405,     405,     405,     405,     405,     405)),
    # --- catalog uploads over the API: a merchant's own; staff who may view import jobs (as in the admin) see all
    Row("api/imports/", "GET", "imports",
        (401,     403,     200,     200,     200,     200,     403,     200,     200)),
    Row("api/imports/", "POST", "imports",
        (401,     403,     400,     400,     400,     400,     403,     403,     403)),
    Row("api/imports/<int:pk>/", "GET", "a_job",
        (401,     403,     200,     200,     404,     404,     403,     200,     200)),
    Row("api/imports/<int:pk>/files/<str:name>/", "GET", "a_job_file",
        (401,     403,     200,     200,     404,     404,     403,     200,     200)),
    # --- the product API: anyone reads listed products; only the owning merchant writes
    Row(r"api/^products/$", "GET", "products",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row(r"api/^products/$", "POST", "new_product",
        (401,     403,     201,     201,     201,     201,     403,     403,     403)),
    Row(r"api/^products\.(?P<format>[a-z0-9]+)/?$", "GET", "products_json",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row(r"api/^products\.(?P<format>[a-z0-9]+)/?$", "POST", "new_product_json",
        (401,     403,     201,     201,     201,     201,     403,     403,     403)),
    Row(r"api/^products/(?P<pk>[0-9]+)/$", "GET", "a_product",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row(r"api/^products/(?P<pk>[0-9]+)/$", "PUT", "a_product_put",
        (401,     403,     200,     200,     403,     403,     403,     403,     403)),
    Row(r"api/^products/(?P<pk>[0-9]+)/$", "PATCH", "a_product_patch",
        (401,     403,     200,     200,     403,     403,     403,     403,     403)),
    Row(r"api/^products/(?P<pk>[0-9]+)/$", "DELETE", "a_product_fresh",
        (401,     403,     204,     204,     403,     403,     403,     403,     403)),
    Row(r"api/^products/(?P<pk>[0-9]+)\.(?P<format>[a-z0-9]+)/?$", "GET", "a_product_json",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("api/", "GET", "api_root",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("api/<drf_format_suffix:format>", "GET", "api_root_json",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("api/schema/", "GET", "schema",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("api/docs/", "GET", "docs",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("media/<path:path>", "GET", "a_image_file",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("favicon.ico", "GET", "favicon",
        (ICON,    ICON,    ICON,    ICON,    ICON,    ICON,    ICON,    ICON,    ICON)),
    # --- the merchant pages: log in; a merchant acts for its own merchant; staff choose one they may act for
    Row("merchant/", "GET", "m_home",
        (M_LOGIN, 403,     200,     M_LOGIN, 200,     M_LOGIN, ACT,     ACT,     ACT)),
    Row("merchant/upload/", "GET", "m_upload",
        (M_LOGIN, 403,     200,     M_LOGIN, 200,     M_LOGIN, ACT,     ACT,     ACT)),
    Row("merchant/upload/", "POST", "m_upload",
        (M_LOGIN, 403,     400,     M_LOGIN, 400,     M_LOGIN, ACT,     ACT,     ACT)),
    Row("merchant/upload/check/", "GET", "m_check",
        (405,     405,     405,     405,     405,     405,     405,     405,     405)),
    Row("merchant/upload/check/", "POST", "m_check",  # {}: no manifest to check
        (M_LOGIN, 403,     400,     M_LOGIN, 400,     M_LOGIN, ACT,     ACT,     ACT)),
    Row("merchant/template.csv", "GET", "m_template",
        (M_LOGIN, 403,     200,     M_LOGIN, 200,     M_LOGIN, 200,     200,     200)),
    Row("merchant/imports/", "GET", "m_imports",
        (M_LOGIN, 403,     200,     M_LOGIN, 200,     M_LOGIN, ACT,     ACT,     ACT)),
    Row("merchant/imports/<int:pk>/", "GET", "m_a_job",
        (M_LOGIN, 403,     200,     M_LOGIN, 404,     M_LOGIN, 403,     200,     200)),
    Row("merchant/imports/<int:pk>/progress/", "GET", "m_a_progress",
        (M_LOGIN, 403,     200,     M_LOGIN, 404,     M_LOGIN, 403,     200,     200)),
    Row("merchant/imports/<int:pk>/files/<str:name>/", "GET", "m_a_file",
        (M_LOGIN, 403,     200,     M_LOGIN, 404,     M_LOGIN, 403,     200,     200)),
    Row("merchant/embed-again/", "GET", "m_embed",
        (405,     405,     405,     405,     405,     405,     405,     405,     405)),
    Row("merchant/embed-again/", "POST", "m_embed",
        (M_LOGIN, 403,     M_HOME,  M_LOGIN, M_HOME,  M_LOGIN, ACT,     ACT,     ACT)),
    Row("merchant/act-for/", "GET", "m_act",
        (M_LOGIN, 403,     403,     M_LOGIN, 403,     M_LOGIN, 200,     200,     200)),
    Row("merchant/act-for/", "POST", "m_act_for_a",
        (M_LOGIN, 403,     403,     M_LOGIN, 403,     M_LOGIN, 400,     400,     M_HOME)),
    Row("merchant/login/", "GET", "m_login",
        (200,     M_HOME,  M_HOME,  200,     M_HOME,  200,     M_HOME,  M_HOME,  M_HOME)),
    Row("merchant/login/", "POST", "m_login",
        (200,     M_HOME,  M_HOME,  200,     M_HOME,  200,     M_HOME,  M_HOME,  M_HOME)),
    Row("merchant/logout/", "GET", "m_logout",
        (405,     405,     405,     405,     405,     405,     405,     405,     405)),
    Row("merchant/logout/", "POST", "m_logout",
        (M_LOGIN, M_LOGIN, M_LOGIN, M_LOGIN, M_LOGIN, M_LOGIN, M_LOGIN, M_LOGIN, M_LOGIN)),
    # --- the admin site: staff only; what a staff member sees is its permissions'
    Row("admin/", "GET", "admin",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   200,     200,     200)),
    Row("admin/login/", "GET", "admin_login",
        (200,     200,     200,     200,     200,     200,     ADMIN,   ADMIN,   ADMIN)),
    Row("admin/login/", "POST", "admin_login",
        (200,     200,     200,     200,     200,     200,     200,     200,     200)),
    Row("admin/logout/", "GET", "admin_logout",
        (ADMIN,   ADMIN,   ADMIN,   ADMIN,   ADMIN,   ADMIN,   405,     405,     405)),
    Row("admin/logout/", "POST", "admin_logout",
        (ADMIN,   ADMIN,   ADMIN,   ADMIN,   ADMIN,   ADMIN,   200,     200,     200)),
    Row("admin/password_change/", "GET", "admin_password",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   200,     200,     200)),
    Row("admin/password_change/", "POST", "admin_password",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   200,     200,     200)),
    Row("admin/password_change/done/", "GET", "admin_password_done",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   200,     200,     200)),
    Row("admin/autocomplete/", "GET", "admin_autocomplete",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   403,     403,     403)),
    Row("admin/jsi18n/", "GET", "admin_jsi18n",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   200,     200,     200)),
    Row("admin/r/<path:content_type_id>/<path:object_id>/", "GET", "admin_view_on_site",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   404,     404,     404)),
    Row("admin/^(?P<app_label>p2w_search|catalog|auth|authtoken)/$", "GET", "admin_app_p2w",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   404,     200,     200)),
    Row("admin/(?P<url>.*)$", "GET", "admin_nowhere",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   404,     404,     404)),
    Row("admin/auth/user/<id>/password/", "GET", "admin_a_password",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   403,     403,     200)),
    Row("admin/auth/user/<id>/password/", "POST", "admin_a_password",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   403,     403,     200)),
    Row("admin/p2w_search/embeddingmodel/index/", "GET", "admin_index_page",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   403,     200,     200)),
    Row("admin/p2w_search/embeddingmodel/index/", "POST", "admin_index_page",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   403,     SAME,    SAME)),
    Row("admin/p2w_search/importjob/<int:pk>/files/<str:name>/", "GET", "admin_a_job_file",
        (LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   LOGIN,   404,     200,     200)),
]
# fmt: on

# The model admins, each on one object (A's, where it has an owner): (app/model, target object, what index_staff may,
# whether anyone may add, the answer of an empty POST to the change form by those who may change, the answer of its
# delete page to those who may delete: the serving model's refuses, back to its change page).
ADMIN_MODELS = [
    ("auth/group", "group", False, True, 200, 200),
    ("auth/user", "a_user", False, True, 200, 200),
    ("authtoken/tokenproxy", "a_user", False, True, 200, 200),
    ("p2w_search/embeddingmodel", "model", True, False, LIST, OBJECT),
    ("p2w_search/productimage", "a_image", True, True, 200, 200),
    ("p2w_search/imageembedding", "a_embedding", True, False, LIST, 200),
    ("p2w_search/importjob", "a_job", True, False, LIST, 200),
    ("catalog/product", "a_unlisted", False, True, 200, 200),
    ("catalog/merchant", "merchant_a", False, True, 200, 200),
]
# Index actions on a changelist, selecting A's object: they need p2w_search.change_productimage (and the list's view).
ACTIONS = {"p2w_search/productimage": "reembed", "catalog/product": "reembed"}


def admin_rows():
    """The table's rows of each model admin: its list (and actions), add, history, delete, change and short URL."""
    rows = []
    for name, target, index_may, addable, changed, deleted in ADMIN_MODELS:
        may = 200 if index_may else 403  # index_staff: every p2w_search permission, none of the others
        denied = (LOGIN,) * 6  # not staff: the admin's login page
        base = f"admin/{name}/"
        listed = LIST if name in ACTIONS else 200  # an action runs, then the list again (a redirect to it)
        rows += [
            Row(base, "GET", f"list:{name}", (*denied, 403, may, 200)),
            Row(base, "POST", f"action:{name}", (*denied, 403, listed if index_may else 403, listed)),
            Row(base + "add/", "GET", f"add:{name}", (*denied, 403, may if addable else 403, 200 if addable else 403)),
            Row(base + "add/", "POST", f"add:{name}", (*denied, 403, may if addable else 403, 200 if addable else 403)),
            Row(base + "<path:object_id>/history/", "GET", f"history:{name}:{target}", (*denied, 403, may, 200)),
            Row(base + "<path:object_id>/delete/", "GET", f"delete:{name}:{target}",
                (*denied, 403, deleted if index_may else 403, deleted)),
            # An empty POST to the delete page deletes nothing: the confirmation is shown again.
            Row(base + "<path:object_id>/delete/", "POST", f"delete:{name}:{target}",
                (*denied, 403, deleted if index_may else 403, deleted)),
            Row(base + "<path:object_id>/change/", "GET", f"change:{name}:{target}", (*denied, 403, may, 200)),
            Row(base + "<path:object_id>/change/", "POST", f"change:{name}:{target}",
                (*denied, 403, changed if index_may else 403, changed)),
            # The short URL of an object redirects to its change page, whoever asks (the page then checks).
            Row(base + "<path:object_id>/", "GET", f"object:{name}:{target}", (*denied, CHANGE, CHANGE, CHANGE)),
        ]
    return rows


TABLE = MATRIX + admin_rows()


def url_patterns(patterns=None, prefix=""):
    """Every URL pattern of the demo's URL conf, as its route (or regex) from the root."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def test_every_url_pattern_has_its_access_rule():
    routes = set(url_patterns())
    listed = {row.route for row in TABLE}
    assert sorted(routes - listed) == [], "URL patterns without an access rule in MATRIX"
    assert sorted(listed - routes) == [], "access rules of URL patterns that no longer exist"
    assert len(TABLE) == len({(row.route, row.method) for row in TABLE}), "a route and method listed twice"


# --- the world the table is asked on ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def quiet_refusals(caplog):
    """Refusals are the point here: Django's warning for each (with its traceback) is left out; errors are logged."""
    caplog.set_level(logging.ERROR, logger="django.request")


class World:
    """Merchants A and B, their users and jobs, A's products (one unlisted), the index, and the roles' users."""


@pytest.fixture
def world(db, media, django_user_model):
    w = World()
    w.a_user = django_user_model.objects.create_user("merchant-a", password="pw")
    w.b_user = django_user_model.objects.create_user("merchant-b", password="pw")
    w.merchant_a = MerchantFactory(name="Acme", slug="acme", user=w.a_user)
    w.merchant_b = MerchantFactory(name="Rival", slug="rival", user=w.b_user)
    w.users = {
        "shopper": django_user_model.objects.create_user("shopper", password="pw"),
        "a": w.a_user, "b": w.b_user,
        "staff": django_user_model.objects.create_user("staff", password="pw", is_staff=True),
        "index_staff": django_user_model.objects.create_user("index-staff", password="pw", is_staff=True),
        "superuser": django_user_model.objects.create_superuser("root", "root@example.com", "pw"),
    }
    w.users["index_staff"].user_permissions.set(Permission.objects.filter(content_type__app_label="p2w_search"))
    w.tokens = {"a_token": Token.objects.create(user=w.a_user).key, "b_token": Token.objects.create(user=w.b_user).key}

    # A's upload, imported as a worker would: a row accepted, a row rejected (its SKU only in A's files).
    manifest = HEADER + manifest_row("A-1") + manifest_row("A-REJECTED-SECRET", price="cheap")
    response = post_catalog(token_client_for(w.tokens["a_token"]), manifest, zip_bytes([("red.png", RED)]))
    assert response.status_code == 202, response.content
    w.a_job = importer.run_import(ImportJob.objects.get(pk=response.json()["id"]))
    assert (w.a_job.state, w.a_job.rows_accepted, w.a_job.rows_rejected) == ("done", 1, 1)
    assert w.a_job.manifest and w.a_job.archive and w.a_job.rejected_rows
    response = post_catalog(token_client_for(w.tokens["b_token"]), HEADER + manifest_row("B-1", "blue.png"),
                            zip_bytes([("blue.png", BLUE)]))
    w.b_job = importer.run_import(ImportJob.objects.get(pk=response.json()["id"]))

    w.a_listed = Product.objects.get(merchant=w.merchant_a, sku="A-1")
    w.a_unlisted = ProductFactory(merchant=w.merchant_a, sku="A-HIDDEN", title="A-UNLISTED-SECRET", listed=False)
    ProductImageFactory(product=w.a_unlisted, data=png((250, 250, 10)))
    w.model = embed_catalog()
    w.a_image = ProductImage.objects.get(product=w.a_listed)
    w.a_embedding = ImageEmbedding.objects.get(image=w.a_image, model=w.model)
    w.group = Group.objects.create(name="editors")
    w.skus = itertools.count()
    return w


def token_client_for(key, **kwargs):
    return Client(headers={"Authorization": f"Token {key}"}, **kwargs)


def client_for(world, role, **kwargs):
    """A fresh client of ``role``: anonymous, logged in (a session), or sending a token (and no session)."""
    if role in world.tokens:
        return token_client_for(world.tokens[role], **kwargs)
    client = Client(**kwargs)
    if role != "anon":
        client.force_login(world.users[role])
    return client


def admin_object(w, name):
    return {"group": w.group, "a_user": w.a_user, "model": w.model, "a_image": w.a_image, "a_embedding": w.a_embedding,
            "a_job": w.a_job, "a_unlisted": w.a_unlisted, "merchant_a": w.merchant_a}[name]


def request_for(w, target):
    """(url, data, content_type) of a table row's target, made anew for each request (files are read once)."""
    if ":" in target:  # an admin page of a model: "kind:app/model[:object]"
        kind, name, *obj = target.split(":")
        base = f"/admin/{name}/"
        pk = admin_object(w, obj[0]).pk if obj else None
        if kind == "action":
            selected = w.a_image.pk if name == "p2w_search/productimage" else w.a_unlisted.pk
            data = {"action": ACTIONS[name], "_selected_action": [selected]} if name in ACTIONS else {}
            return base, data, None
        url = {"list": base, "add": f"{base}add/", "history": f"{base}{pk}/history/",
               "delete": f"{base}{pk}/delete/", "change": f"{base}{pk}/change/", "object": f"{base}{pk}/"}[kind]
        return url, {}, None
    job, pk = w.a_job.pk, w.a_listed.pk
    sku = f"NEW-{next(w.skus)}"
    product = {"sku": sku, "title": "New", "category": "mug", "price": "5.00"}
    return {
        "home": ("/", None, None),
        "photo": ("/", {"photo": uploaded(png((10, 200, 10)))}, None),
        "a_listed": (f"/product/{pk}/", None, None),
        "text_search": ("/api/search/text/?q=red", None, None),
        "image_search": ("/api/search/image/", {"image": uploaded(png((200, 10, 10)))}, None),
        "composed": ("/api/search/composed/", {"product": pk, "text": "in blue"}, "application/json"),
        "similar": (f"/api/search/similar/?product={pk}", None, None),
        "imports": ("/api/imports/", {}, None),
        "a_job": (f"/api/imports/{job}/", None, None),
        "a_job_file": (f"/api/imports/{job}/files/manifest/", None, None),
        "products": ("/api/products/", None, None),
        "new_product": ("/api/products/", product, "application/json"),
        "products_json": ("/api/products.json", None, None),
        "new_product_json": ("/api/products.json", product, "application/json"),
        "a_product": (f"/api/products/{pk}/", None, None),
        "a_product_put": (f"/api/products/{pk}/", {**product, "sku": "A-1"}, "application/json"),
        "a_product_patch": (f"/api/products/{pk}/", {"price": "7.00"}, "application/json"),
        "a_product_fresh": (f"/api/products/{ProductFactory(merchant=w.merchant_a).pk}/", None, None),
        "a_product_json": (f"/api/products/{pk}.json", None, None),
        "api_root": ("/api/", None, None),
        "api_root_json": ("/api/.json", None, None),
        "schema": ("/api/schema/", None, None),
        "favicon": ("/favicon.ico", None, None),
        "docs": ("/api/docs/", None, None),
        "a_image_file": (w.a_image.file.url, None, None),
        "m_home": ("/merchant/", {}, None),
        "m_upload": ("/merchant/upload/", {}, None),
        "m_check": ("/merchant/upload/check/", {}, None),
        "m_template": ("/merchant/template.csv", None, None),
        "m_imports": ("/merchant/imports/", None, None),
        "m_a_job": (f"/merchant/imports/{job}/", None, None),
        "m_a_progress": (f"/merchant/imports/{job}/progress/", None, None),
        "m_a_file": (f"/merchant/imports/{job}/files/manifest/", None, None),
        "m_embed": ("/merchant/embed-again/", {}, None),
        "m_act": ("/merchant/act-for/", {}, None),
        "m_act_for_a": ("/merchant/act-for/", {"merchant": w.merchant_a.pk}, None),
        "m_login": ("/merchant/login/", {}, None),
        "m_logout": ("/merchant/logout/", {}, None),
        "admin": ("/admin/", None, None),
        "admin_login": ("/admin/login/", {}, None),
        "admin_logout": ("/admin/logout/", {}, None),
        "admin_password": ("/admin/password_change/", {}, None),
        "admin_password_done": ("/admin/password_change/done/", None, None),
        "admin_autocomplete": ("/admin/autocomplete/", None, None),
        "admin_jsi18n": ("/admin/jsi18n/", None, None),
        "admin_view_on_site": (f"/admin/r/{ContentType.objects.get_for_model(Product).pk}/{w.a_unlisted.pk}/",
                               None, None),
        "admin_app_p2w": ("/admin/p2w_search/", None, None),
        "admin_nowhere": ("/admin/no-such-page/", None, None),
        "admin_a_password": (f"/admin/auth/user/{w.a_user.pk}/password/", {}, None),
        "admin_index_page": ("/admin/p2w_search/embeddingmodel/index/", {}, None),
        "admin_a_job_file": (f"/admin/p2w_search/importjob/{job}/files/manifest/", None, None),
    }[target]


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def matches(expected, response, url):
    if isinstance(expected, int):
        return response.status_code == expected
    if response.status_code not in (301, 302, 303):
        return False
    target = (expected.replace("{url}", url).replace("{list}", "/".join(url.split("/")[:4]) + "/")
              .replace("{object}", "/".join(url.split("/")[:5]) + "/"))
    location = response["Location"]
    if "?" in target:
        return location.startswith(target)
    return location.split("?", 1)[0] == target


# Requests that change their session (log out, choose a merchant, keep a photo) get a client of their own.
FRESH = {"m_logout", "admin_logout", "m_act_for_a", "photo"}


def ask(w, role, row, clients):
    url, data, content_type = request_for(w, row.target)
    if row.target in FRESH:
        client = client_for(w, role)
    else:
        client = clients[role] = clients.get(role) or client_for(w, role)
    send = getattr(client, row.method.lower())
    if row.method == "GET":
        return url, send(url)
    kwargs = {"content_type": content_type} if content_type else {}
    return url, send(url, data or {}, **kwargs)


def test_each_role_gets_the_answer_the_table_states(world):
    wrong, clients = [], {}
    for row in TABLE:
        for role, expected in zip(ROLES, row.expected, strict=True):
            url, response = ask(world, role, row, clients)
            if not matches(expected, response, url):
                where = response.get("Location", "")
                wrong.append(f"{row.method} {url} as {role}: {response.status_code} {where}, expected {expected}")
            if role not in SEE_A_PRIVATE:
                content = body(response).decode(errors="replace")
                leaked = [secret for secret in SECRETS if secret in content]
                if leaked:
                    wrong.append(f"{row.method} {url} as {role}: shows {leaked}")
    assert wrong == [], "\n".join(wrong)


# --- the less obvious ------------------------------------------------------------------------------------------

NO_MERCHANT = "Only merchants upload catalogs; this account belongs to no merchant."
NO_UPLOAD = "You have no upload with this id."


def grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached on the user


def test_staff_without_the_permission_to_view_import_jobs_get_no_merchants_files(world):
    """The admin lets staff download an upload's files with the permission to view import jobs; so do the API and
    the pages. A staff account without it (one that edits the blog, say) got every merchant's manifest."""
    staff, job = world.users["staff"], world.a_job
    client = client_for(world, "staff")
    for url in ("/api/imports/", f"/api/imports/{job.pk}/", f"/api/imports/{job.pk}/files/manifest/"):
        response = client.get(url)
        assert (response.status_code, response.json()) == (403, {"detail": NO_MERCHANT}), url
    for url in (f"/merchant/imports/{job.pk}/", f"/merchant/imports/{job.pk}/files/manifest/"):
        response = client.get(url)
        assert response.status_code == 403 and "A-REJECTED-SECRET" not in body(response).decode(), url
    assert client.get(f"/admin/p2w_search/importjob/{job.pk}/files/manifest/").status_code == 404  # as before

    grant(staff, "view_importjob")
    manifest = client.get(f"/api/imports/{job.pk}/files/manifest/")
    assert manifest.status_code == 200 and "A-REJECTED-SECRET" in body(manifest).decode()
    assert client.get(f"/merchant/imports/{job.pk}/files/manifest/").status_code == 200
    assert [j["id"] for j in client.get("/api/imports/").json()["results"]] == [world.b_job.pk, job.pk]


def test_staff_act_only_for_merchants_whose_products_they_may_change(world):
    """Acting for a merchant is uploading its catalog (a full sync unlists its products): the demo lets staff who
    may add and change products do it, as the admin would. Any staff account could act for any merchant."""
    staff = world.users["staff"]
    client = client_for(world, "staff")
    page = client.get("/merchant/act-for/")
    assert page.status_code == 200 and "There is no merchant you may act for." in text(page)
    refused = client.post("/merchant/act-for/", {"merchant": world.merchant_a.pk})
    assert refused.status_code == 400 and "There is no merchant you may act for." in text(refused)
    session = client.session
    session[SESSION_KEY] = str(world.merchant_a.pk)  # a choice made before the permission was taken away
    session.save()
    assert client.get("/merchant/imports/")["Location"] == "/merchant/act-for/?next=%2Fmerchant%2Fimports%2F"
    assert client.post("/merchant/upload/", files(HEADER + manifest_row("S-1")))["Location"].startswith(ACT)
    assert not ImportJob.objects.filter(owner=staff).exists()

    grant(staff, "add_product", "change_product")  # may act for merchants, still not view every upload
    chosen = client.post("/merchant/act-for/", {"merchant": world.merchant_a.pk})
    assert (chosen.status_code, chosen["Location"]) == (302, "/merchant/")
    assert f'data-job-id="{world.a_job.pk}"' in client.get("/merchant/imports/").content.decode()
    assert client.get(f"/merchant/imports/{world.a_job.pk}/files/manifest/").status_code == 200  # acting for A
    assert client.get(f"/merchant/imports/{world.b_job.pk}/").status_code == 404  # not B's: no upload of A
    assert client.get(f"/api/imports/{world.a_job.pk}/").status_code == 403  # the API: no merchant of its own
    sent = client.post("/merchant/upload/", files(HEADER + manifest_row("S-1")))
    job = ImportJob.objects.get(owner=staff)  # who acted is kept with the upload
    assert (sent["Location"], job.merchant_key) == (f"/merchant/imports/{job.pk}/", str(world.merchant_a.pk))


def test_a_merchant_user_unlinked_from_or_left_without_its_merchant_sees_nothing_of_it(world):
    job, merchant = world.a_job, world.merchant_a
    merchant.user = None
    merchant.save()
    token, session = client_for(world, "a_token"), client_for(world, "a")
    for url in ("/api/imports/", f"/api/imports/{job.pk}/", f"/api/imports/{job.pk}/files/manifest/"):
        response = token.get(url)
        assert (response.status_code, response.json()) == (403, {"detail": NO_MERCHANT}), url
    page = session.get(f"/merchant/imports/{job.pk}/")
    assert page.status_code == 403 and NO_MERCHANT in text(page)
    assert token.patch(f"/api/products/{world.a_listed.pk}/", {"price": "1.00"},
                       content_type="application/json").status_code == 403

    MerchantFactory(name="New", slug="new", user=world.a_user)  # the user now sells for another merchant
    response = token.get(f"/api/imports/{job.pk}/")
    assert (response.status_code, response.json()) == (404, {"detail": NO_UPLOAD})
    assert session.get(f"/merchant/imports/{job.pk}/files/manifest/").status_code == 404
    merchant.delete()  # its jobs stay, under a key no merchant has
    assert client_for(world, "b_token").get(f"/api/imports/{job.pk}/").status_code == 404
    assert client_for(world, "superuser").get(f"/merchant/imports/{job.pk}/").status_code == 200


def test_a_user_belongs_to_one_merchant_at_most(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        MerchantFactory(name="Second", slug="second", user=world.a_user)


def test_deactivated_users_are_refused_by_token_and_by_session(world):
    session = client_for(world, "a")
    world.a_user.is_active = False
    world.a_user.save()
    token = client_for(world, "a_token")
    for url in ("/api/imports/", f"/api/imports/{world.a_job.pk}/files/manifest/", "/api/products/"):
        response = token.get(url)
        assert (response.status_code, response.json()) == (401, {"detail": "User inactive or deleted."}), url
    response = session.get(f"/api/imports/{world.a_job.pk}/")
    assert (response.status_code, response.json()) == (
        401, {"detail": "Authentication credentials were not provided."})
    response = session.get(f"/merchant/imports/{world.a_job.pk}/files/manifest/")
    assert response.status_code == 302 and response["Location"].startswith(M_LOGIN)


def test_the_merchant_pages_and_session_writes_check_csrf(world):
    a = client_for(world, "a", enforce_csrf_checks=True)
    for url, data in (("/merchant/upload/", files(HEADER + manifest_row("C-1"))), ("/merchant/upload/check/", {}),
                      ("/merchant/embed-again/", {}), ("/merchant/logout/", {}), ("/", {"photo": uploaded(png())})):
        response = a.post(url, data)
        assert response.status_code == 403 and "CSRF verification failed" in response.content.decode(), url
    root = client_for(world, "superuser", enforce_csrf_checks=True)
    assert root.post("/merchant/act-for/", {"merchant": world.merchant_a.pk}).status_code == 403
    stranger = Client(enforce_csrf_checks=True)  # a login form sent from another site: no session is made
    response = stranger.post("/merchant/login/", {"username": "a", "password": "wrong"})
    assert response.status_code == 403 and "CSRF verification failed" in response.content.decode()
    for url, data in (("/api/imports/", {}), ("/api/products/", {"sku": "C-2"})):
        response = a.post(url, data)
        assert (response.status_code, response.json()) == (403, {"detail": "CSRF Failed: CSRF cookie not set."}), url
    assert not ImportJob.objects.filter(merchant_key=str(world.merchant_a.pk)).exclude(pk=world.a_job.pk).exists()
    token = client_for(world, "a_token", enforce_csrf_checks=True)  # a token is no cookie: no CSRF to check
    new = {"sku": "C-3", "title": "New", "category": "mug", "price": "5.00"}
    assert token.post("/api/products/", new, content_type="application/json").status_code == 201


@pytest.mark.parametrize("pk", [0, 2**31, 10**20])
def test_ids_that_are_no_object_are_404(world, pk):
    root, a = client_for(world, "superuser"), client_for(world, "a_token")
    for client, url in ((a, f"/api/imports/{pk}/"), (a, f"/api/imports/{pk}/files/manifest/"),
                        (root, f"/merchant/imports/{pk}/"), (root, f"/merchant/imports/{pk}/progress/"),
                        (root, f"/product/{pk}/"), (a, f"/api/products/{pk}/"),
                        (root, f"/admin/p2w_search/importjob/{pk}/files/manifest/")):
        assert client.get(url).status_code == 404, url
    assert a.patch(f"/api/products/{pk}/", {"price": "1"}, content_type="application/json").status_code == 404
    assert root.get(f"/admin/catalog/product/{pk}/change/")["Location"] == "/admin/"


def test_other_merchants_ids_and_unlisted_products_are_not_found(world):
    a, b = client_for(world, "a_token"), client_for(world, "b_token")
    for url in (f"/api/imports/{world.b_job.pk}/", f"/api/imports/{world.b_job.pk}/files/rejected-rows/"):
        response = a.get(url)
        assert (response.status_code, response.json()) == (404, {"detail": NO_UPLOAD}), url
    assert client_for(world, "a").get(f"/merchant/imports/{world.b_job.pk}/progress/").status_code == 404

    hidden = world.a_unlisted
    for client in (client_for(world, "anon"), a, b):
        assert client.get(f"/product/{hidden.pk}/").status_code == 404
        assert client.get(f"/api/products/{hidden.pk}/").status_code == 404
    assert b.patch(f"/api/products/{hidden.pk}/", {"price": "1.00"}, content_type="application/json").status_code \
        == 404
    assert a.patch(f"/api/products/{hidden.pk}/", {"price": "1.00"}, content_type="application/json").status_code \
        == 200  # the owner may change its unlisted product
    # A search by an unlisted product (or its image) is answered as for one that does not exist.
    image = ProductImage.objects.get(product=hidden)
    no_product = {"product": [f"There is no product with id {hidden.pk}."]}
    no_image = {"image_id": [f"There is no product image with id {image.pk}."]}
    for url, data, expected in ((f"/api/search/similar/?product={hidden.pk}", None, no_product),
                                ("/api/search/image/", {"image_id": image.pk}, no_image),
                                ("/api/search/composed/", {"product": hidden.pk, "text": "in red"}, no_product)):
        response = b.post(url, data, content_type="application/json") if data else b.get(url)
        assert (response.status_code, response.json()) == (400, expected), url


@pytest.mark.parametrize("name", ["../manifest", "..", "manifest.csv", "MANIFEST", "rejected_rows", "manifest ",
                                  "b-file"])
def test_upload_files_are_named_by_kind_never_by_path(world, name):
    if name == "b-file":  # the name another job's file has in the storage
        name = world.b_job.manifest.name.rsplit("/", 1)[-1]
    expected = f"An upload has no file {name!r}; its files are manifest, archive, rejected-rows."
    if "/" in name:  # no URL pattern takes it
        expected = "Not found."
    response = client_for(world, "a_token").get(f"/api/imports/{world.a_job.pk}/files/{name}/")
    assert (response.status_code, response.json()) == (404, {"detail": expected})
    page = client_for(world, "a").get(f"/merchant/imports/{world.a_job.pk}/files/{name}/")
    assert page.status_code == 404
    admin = client_for(world, "superuser").get(f"/admin/p2w_search/importjob/{world.a_job.pk}/files/{name}/",
                                               follow=True)
    if "/" in name:  # the admin's short URL of an object ("<path:object_id>/"), whose change page finds none
        assert admin.redirect_chain[-1] == ("/admin/", 302) and admin.status_code == 200
    else:
        assert admin.status_code == 404
    assert "A-REJECTED-SECRET" not in body(admin).decode()


def test_no_url_climbs_out_to_the_private_uploads(world, media):
    """Uploads are kept beside the public media folder in the tests (tmp/uploads and tmp/media)."""
    stored = world.a_job.manifest.name
    client = client_for(world, "anon")
    for url in (f"/media/../uploads/{stored}", f"/media/..%2Fuploads%2F{stored}", f"/media/%2e%2e/uploads/{stored}",
                f"/api/imports/{world.a_job.pk}/files/..%2F..%2F{stored}/"):
        response = client.get(url)
        assert response.status_code in (400, 404), url
        assert "A-REJECTED-SECRET" not in body(response).decode(), url
    own = client_for(world, "a_token").get(f"/api/imports/{world.a_job.pk}/files/manifest/")
    assert "A-REJECTED-SECRET" in body(own).decode()  # the control: the secret is in that file


def test_a_shoppers_photo_is_only_for_the_browser_that_sent_it(world):
    shopper = client_for(world, "shopper")
    sent = shopper.post("/", {"photo": uploaded(png((10, 200, 10)))})
    assert sent.status_code == 303
    link = sent["Location"]
    token = link.split("photo=", 1)[1].split("&", 1)[0]
    assert len(token) >= 24  # 18 random bytes: not to be guessed
    assert shopper.get(link).status_code == 200
    refused = "This photo is not available here: photos are kept only for the browser that uploaded them."
    for role in ("anon", "a", "b", "superuser"):
        other = client_for(world, role)
        if role == "anon":  # the same shopper in another browser
            other.force_login(world.users["shopper"])
        response = other.get(link)
        assert response.status_code == 404 and refused in text(response), role
    assert client_for(world, "anon").get(f"/media/p2w-photos/{token}").status_code == 404  # never served
    shopper.post("/merchant/logout/")
    assert shopper.get(link).status_code == 404  # logging out ends the session and its photos


def test_admin_actions_need_their_permission(world):
    staff = grant(world.users["staff"], "view_product", "change_product", "view_importjob")
    client = client_for(world, "staff")
    for page, pk in (("/admin/catalog/product/", world.a_unlisted.pk),
                     ("/admin/p2w_search/importjob/", world.a_job.pk)):
        listing = client.get(page)
        assert listing.status_code == 200 and listing.context["action_form"] is None, page  # no action offered
        for action in ("delete_selected", "reembed", "remove_from_index"):
            response = client.post(page, {"action": action, "_selected_action": [pk]})
            assert response.status_code == 200, (page, action)  # the list again, nothing done
    assert Product.objects.filter(pk=world.a_unlisted.pk).exists()
    assert ImportJob.objects.filter(pk=world.a_job.pk).exists()
    assert ImageEmbedding.objects.filter(image__product=world.a_unlisted, state="ready").exists()
    assert not staff.has_perm("p2w_search.change_productimage")


def test_a_logged_in_user_sent_back_to_the_login_page_goes_home(world):
    """next= the login page itself made Django's LoginView raise "Redirection loop" (a 500) for a logged-in user."""
    client = client_for(world, "a")
    for url in ("/merchant/login/?next=/merchant/login/", "/merchant/login/?next=%2Fmerchant%2Flogin%2F"):
        response = client.get(url)
        assert (response.status_code, response["Location"]) == (302, "/merchant/"), url


# (role, URL): a NUL in a filter, a search, a path, a page number and a redirect target.
NUL_URLS = [
    ("superuser", "/admin/p2w_search/importjob/?q=%00"),
    ("superuser", "/admin/p2w_search/importjob/?state__exact=%00"),
    ("superuser", "/admin/p2w_search/importjob/?policy__exact=%00"),
    ("superuser", "/admin/p2w_search/importjob/?full_sync__exact=%00"),
    ("superuser", "/admin/p2w_search/embeddingmodel/?state__exact=%00"),
    ("superuser", "/admin/p2w_search/imageembedding/?state__exact=%00"),
    ("superuser", "/admin/p2w_search/imageembedding/?model__id__exact=%00"),
    ("superuser", "/admin/p2w_search/productimage/?q=%00"),
    ("superuser", "/admin/p2w_search/productimage/?in_index__exact=%00"),
    ("superuser", "/admin/p2w_search/productimage/?embeddings__state__exact=%00"),
    ("superuser", "/admin/p2w_search/productimage/?embeddings__model__id__exact=%00"),
    ("superuser", "/admin/catalog/product/?q=%00"),
    ("superuser", "/admin/catalog/product/?category=%00"),
    ("superuser", "/admin/catalog/product/?category__exact=%00"),
    ("superuser", "/admin/catalog/product/?in_stock__exact=%00"),
    ("superuser", "/admin/catalog/product/?embedding=%00"),
    ("superuser", "/admin/catalog/product/?merchant__id__exact=%00"),
    ("superuser", "/admin/p2w_search/importjob/?merchant_key=%00"),
    ("superuser", "/admin/catalog/merchant/?name=%00"),
    ("superuser", "/admin/auth/user/?q=%00"),
    ("superuser", "/admin/auth/user/?username=%00"),
    ("superuser", "/admin/auth/user/?is_staff__exact=%00"),
    ("superuser", "/admin/auth/user/?groups__id__exact=%00"),
    ("superuser", "/admin/auth/group/?name=%00"),
    ("superuser", "/admin/authtoken/tokenproxy/?key=%00"),
    ("superuser", "/admin/catalog/product/%00/change/"),
    ("superuser", "/admin/r/%00/%00/"),
    ("superuser", "/merchant/act-for/?next=%00"),
    ("anon", "/media/%00"),
    ("anon", "/media/p2w/%00.png"),
    ("anon", "/?q=%00"),
    ("anon", "/?category=%00"),
    ("anon", "/api/search/text/?q=%00"),
    ("anon", "/api/search/text/?q=red&category=%00"),
    ("anon", "/api/products/?page=%00"),
    ("anon", "/api/products/%00/"),
    ("anon", "/merchant/login/?next=%00"),
    ("a_token", "/api/imports/?page=%00"),
    ("a", "/merchant/imports/?page=%00"),
    ("a", "/merchant/imports/{job}/files/%00/"),
]


def test_a_nul_anywhere_is_never_a_500(world):
    """A NUL in a filter of an admin list (of the app's models and the shop's) was a 500: PostgreSQL refuses it.

    One world for every URL (building it is most of a test's time); every wrong answer is listed.
    """
    wrong = []
    for role, url in NUL_URLS:
        client = client_for(world, role, raise_request_exception=False)
        response = client.get(url.format(job=world.a_job.pk))
        path, _, query = url.partition("?")
        if path.startswith("/admin/") and query and not query.startswith("q="):  # the admin's "incorrect lookup"
            answer, expected = (response.status_code, response.get("Location")), (302, f"{path}?e=1")
        else:
            answer, expected = response.status_code < 500, True
        if answer != expected:
            wrong.append(f"{url} as {role}: {response.status_code} {response.get('Location', '')}")
    assert wrong == [], "\n".join(wrong)

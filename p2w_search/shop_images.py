"""A shop's own image model, followed by the index (``P2W_SEARCH["IMAGE_MODEL"]``).

A shop that has its own image model (django-oscar's ``catalogue.ProductImage``, say)
names it and its fields::

    P2W_SEARCH["IMAGE_MODEL"] = {"MODEL": "catalogue.ProductImage", "PRODUCT": "product",
                                 "FILE": "original", "ORDER": "display_order"}

and, when a flag rather than the order marks a product's main picture, that flag (``"MAIN":
"is_main"``): the main picture comes first whatever its order, as the shop shows it. A model
that holds other media too (Saleor's ``ProductMedia``: images and videos) says which rows are
images with ``"FILTER"``, field lookups as ``SEARCH_FILTER``'s (``{"type": "IMAGE"}``): the
others are not mirrored, and a row that stops matching loses its mirror.

Each of its images then has a mirror, a p2w_search ``ProductImage`` whose ``source_pk`` is
the shop image's key and whose file is the shop's stored file, read where it is: never
copied, rewritten, served or deleted by this app. Save and delete signals keep the mirrors
current as the shop's admin, dashboard or code change images; ``manage.py p2w_index sync``
(and the periodic sweep) reconciles them with the shop's images for what no signal saw (a
bulk insert, a queryset update): new, changed (another file or product) and deleted.
"""

import hashlib
import logging

from django.apps import apps
from django.core.exceptions import SuspiciousFileOperation
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save

from p2w_search.conf import P2WImproperlyConfigured, app_settings, lookups_problem
from p2w_search.files import shop_image_storage

__all__ = ["configured", "config", "storage", "mirror", "forget", "sync", "connect"]

logger = logging.getLogger(__name__)

# What reading a shop's file may raise for that file alone: missing, unreadable, a directory, or a
# name that leads outside the storage ("../x.png", "/etc/passwd": legacy rows, careless shop code).
_READ_ERRORS = (OSError, SuspiciousFileOperation)


# The keys of IMAGE_MODEL that config() reads (another is a typo: manage.py check warns, p2w_search.W013).
KEYS = ("MODEL", "PRODUCT", "FILE", "ORDER", "MAIN", "FILTER")


def configured():
    return bool(app_settings.IMAGE_MODEL)


def config():
    """``{"model", "product", "file", "order", "main", "filter"}`` of ``IMAGE_MODEL``, checked.

    P2WImproperlyConfigured names what is wrong.
    """
    setting = app_settings.IMAGE_MODEL
    try:
        model = apps.get_model(setting["MODEL"])
    except (KeyError, LookupError, ValueError, TypeError):
        raise P2WImproperlyConfigured(
            "P2W_SEARCH['IMAGE_MODEL'] needs 'MODEL', the shop's image model as 'app_label.ModelName'.") from None
    names = {"product": setting.get("PRODUCT", "product"), "file": setting.get("FILE", "image"),
             "order": setting.get("ORDER"), "main": setting.get("MAIN")}
    for role, name in names.items():
        if name is not None and name not in {f.name for f in model._meta.get_fields()}:
            raise P2WImproperlyConfigured(
                f"P2W_SEARCH['IMAGE_MODEL'][{role.upper()!r}] is {name!r}, which {setting['MODEL']} does not have.")
    _check_product_link(model, setting["MODEL"], names["product"])
    return {"model": model, **names, "filter": _image_filter(model, setting)}


def _image_filter(model, setting):
    """``IMAGE_MODEL["FILTER"]`` (``{}``: every row is an image), checked against ``model`` without a query."""
    lookups = setting.get("FILTER") or {}
    label = setting["MODEL"]
    if not isinstance(lookups, dict):
        raise P2WImproperlyConfigured(
            f"P2W_SEARCH['IMAGE_MODEL']['FILTER'] must be a dict of field lookups of {label} that its images "
            f"match, e.g. {{'type': 'IMAGE'}}, not {lookups!r}.")
    reason = lookups_problem(model, lookups)
    if reason:
        raise P2WImproperlyConfigured(
            f"P2W_SEARCH['IMAGE_MODEL']['FILTER'] {lookups!r} cannot filter {label}: {reason}")
    return lookups


def _check_product_link(model, label, name):
    """Raise P2WImproperlyConfigured unless ``model.<name>`` is a foreign key (or one-to-one) to the product model.

    The mirror's ``product_id`` is taken from it: a plain field, or a key to another model (a
    variant, the shop's merchant), made every mirror fail, or name a product it is no image of.
    """
    from p2w_search.conf import product_model_label

    field = model._meta.get_field(name)
    product_model = apps.get_model(product_model_label())
    related = getattr(field.related_model, "_meta", None)
    forward = field.concrete and (field.many_to_one or field.one_to_one)  # not a relation the product model holds
    if not forward or related is None or related.concrete_model is not product_model._meta.concrete_model:
        raise P2WImproperlyConfigured(
            f"P2W_SEARCH['IMAGE_MODEL']['PRODUCT'] is {name!r}, which is no foreign key of {label} to "
            f"{product_model._meta.label}, the product model (P2W_SEARCH_PRODUCT_MODEL).")


def _product_by_other_field(cfg):
    """Whether the shop image's foreign key to its product holds another field of the product than its key.

    ``ForeignKey(Product, to_field="sku")``: the column holds the SKU, which the mirror would have
    taken for the product's key (another product's images, or a failed mirror).
    """
    return not cfg["model"]._meta.get_field(cfg["product"]).target_field.primary_key


def storage():
    """The storage of the shop's image files (its file field's)."""
    config()  # checked, with a message naming what is wrong
    return shop_image_storage()


def _values(shop_image, cfg):
    return {"product_id": _product_key(shop_image, cfg), "name": getattr(shop_image, cfg["file"]).name,
            "position": _image_position(shop_image, cfg)}


def _image_position(shop_image, cfg):
    """The mirror's position: the shop's order (0 without ``ORDER``), and with ``MAIN`` the main picture first.

    A product is searched by its first image ("more like this", "like this, but ..."): with a
    ``MAIN`` flag, the picture the shop shows first is it, not the one of lowest order.
    """
    position = _position(getattr(shop_image, cfg["order"])) if cfg["order"] else 0
    if not cfg.get("main"):
        return position
    return 0 if getattr(shop_image, cfg["main"]) else _position(position + 1)


def _product_key(shop_image, cfg):
    """The primary key of the shop image's product (None: it has none), which the mirror's ``product_id`` stores.

    The foreign key's column when it holds the product's key (no query); through the product
    otherwise (``to_field``: ``sync`` reads the products with their images).
    """
    field = cfg["model"]._meta.get_field(cfg["product"])
    value = getattr(shop_image, field.attname)
    if value is None or not _product_by_other_field(cfg):
        return value
    try:
        return getattr(shop_image, field.name).pk
    except field.related_model.DoesNotExist:  # a key without a product (db_constraint=False): like no product
        return None


def _is_image(shop_image, cfg):
    """Whether ``shop_image`` is one of the rows ``FILTER`` says are images (one query, with a filter only)."""
    lookups = cfg.get("filter")
    return not lookups or cfg["model"]._default_manager.filter(pk=shop_image.pk, **lookups).exists()


def _position(order):
    """The shop's order as the mirror's position: the nearest value the column holds (None is 0).

    django-oscar's ``display_order`` is a PositiveIntegerField and a shop's own may be any
    integer, so a value past the smallint column would otherwise make the mirror's save fail.
    """
    from p2w_search.models import ProductImage

    field = ProductImage._meta.get_field("position")
    low, high = connection.ops.integer_field_range(field.get_internal_type())
    return min(max(int(order or 0), low), high)


def _hash(name):
    digest = hashlib.sha256()
    with storage().open(name, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mirror(shop_image, *, content=True):
    """Create or update the mirror of ``shop_image``; return it (None when the shop image has no file or product,
    or is no image by ``FILTER``: a mirror it had is deleted).

    A new mirror, or one whose file or product changed, is queued for embedding (the save
    signal of ProductImage does it when the transaction commits). With ``content`` (what a
    save of the shop's image does), a file under an unchanged name is read and compared by
    its SHA-256 too: a storage that overwrites (S3's default) may have rewritten it, and a
    rewritten file is embedded again.
    """
    from p2w_search.models import ProductImage

    cfg = config()
    values = _values(shop_image, cfg)
    source = str(shop_image.pk)
    current = ProductImage.objects.filter(source_pk=source).first()
    if not values["name"] or values["product_id"] is None or not _is_image(shop_image, cfg):
        if current is not None:
            current.delete()
        return None
    if current is not None and (current.file.name, current.product_id) == (values["name"], values["product_id"]):
        if current.position != values["position"]:
            ProductImage.objects.filter(pk=current.pk).update(position=values["position"])
        if content:
            _follow_content(current, values["name"])
        return current
    try:
        digest = _hash(values["name"])
    except _READ_ERRORS as exc:  # a file not (yet) in the shop's storage, or that cannot be: embedding says why
        logger.warning("image %s of %s: cannot read %s (%s)", source, cfg["model"]._meta.label, values["name"], exc)
        digest = ""
    image = current or ProductImage(source_pk=source)
    image.product_id, image.position, image.sha256 = values["product_id"], values["position"], digest
    image.file.name = values["name"]  # the shop's file, where it is
    image.save()
    return image


def _follow_content(image, name):
    """Queue ``image`` again when the shop's file ``name`` no longer has the content it was embedded from."""
    from p2w_search.indexing import queue_images
    from p2w_search.models import ProductImage

    try:
        digest = _hash(name)
    except _READ_ERRORS as exc:
        logger.warning("image %s: cannot read %s (%s)", image.source_pk, name, exc)
        return False
    if digest == image.sha256:
        return False
    ProductImage.objects.filter(pk=image.pk).update(sha256=digest)
    image.sha256 = digest
    queue_images([image])
    return True


def forget(source_pk):
    """Delete the mirror of the shop image ``source_pk`` (its vectors go with it; the shop's file stays)."""
    from p2w_search.models import ProductImage

    return ProductImage.objects.filter(source_pk=str(source_pk)).delete()[0]


def sync(*, content=False):
    """Reconcile the mirrors with the shop's images; return the counts of ``created``, ``changed``, ``deleted``.

    Images are compared by file name, product and order, which costs no file read (beat runs
    this every minute). With ``content``, every file under an unchanged name is read and
    compared by its SHA-256 as well (``p2w_index sync --content``, after files were rewritten
    in place without a save). An image that cannot be mirrored is logged with the reason and
    counted as ``failed``; the others go on, and the next sync tries it again. Rows that ``FILTER``
    leaves out are not read, and their mirrors are deleted.
    """
    from p2w_search.models import ProductImage

    cfg = config()
    mirrors = {image.source_pk: image for image in ProductImage.objects.exclude(source_pk="")}
    counts = {"created": 0, "changed": 0, "deleted": 0, "unchanged": 0, "failed": 0}
    seen = set()
    rows = cfg["model"]._default_manager.filter(**cfg["filter"])
    if _product_by_other_field(cfg):  # each image's product key is read through its product: in the same query
        rows = rows.select_related(cfg["product"])
    for shop_image in rows.iterator(chunk_size=2000):
        source = str(shop_image.pk)
        if source in seen:  # a FILTER across a multi-valued relation returns a row once per match
            continue
        seen.add(source)
        try:
            with transaction.atomic():
                outcome = _sync_one(shop_image, mirrors.get(source), cfg, content=content)
        except Exception:  # one bad row of the shop's must not keep the others out of the index
            logger.exception("image %s of %s: cannot mirror it; the next sync tries again", source,
                             cfg["model"]._meta.label)
            outcome = "failed"
        if outcome:
            counts[outcome] += 1
    gone = [source for source in mirrors if source not in seen]
    counts["deleted"] = ProductImage.objects.filter(source_pk__in=gone).delete()[1].get(
        ProductImage._meta.label, 0) if gone else 0
    return counts


def _sync_one(shop_image, current, cfg, *, content):
    """Bring the mirror ``current`` (None: none yet) of ``shop_image`` up to date; return which count it adds to."""
    values = _values(shop_image, cfg)
    if current is not None and (current.file.name, current.product_id, current.position) == (
            values["name"], values["product_id"], values["position"]):
        return "changed" if content and _follow_content(current, values["name"]) else "unchanged"
    if mirror(shop_image, content=content) is None:
        return None
    return "created" if current is None else "changed"


def _saved(sender, instance, raw=False, **kwargs):
    if raw:  # loaddata
        return
    source = instance.pk

    def follow():
        # After the shop's commit: an error here would answer the shop's request with a 500 for a
        # save that is done. It is logged, and the sync (the periodic sweep) tries again.
        try:
            with transaction.atomic():
                current = sender._default_manager.filter(pk=source).first()
                mirror(current) if current is not None else forget(source)
        except Exception:
            logger.exception("image %s of %s: cannot mirror it; the next sync tries again", source,
                             sender._meta.label)

    transaction.on_commit(follow)


def _deleted(sender, instance, **kwargs):
    source = instance.pk
    transaction.on_commit(lambda: forget(source))


def connect():
    """Follow the shop's image model's saves and deletes (AppConfig.ready, when ``IMAGE_MODEL`` is set)."""
    if not configured():
        return
    model = config()["model"]
    post_save.connect(_saved, sender=model, dispatch_uid="p2w_search.shop_images.saved")
    post_delete.connect(_deleted, sender=model, dispatch_uid="p2w_search.shop_images.deleted")

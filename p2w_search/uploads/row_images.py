"""A row's images: read from the upload's zip or fetched, checked, copied for serving, then attached.

``prepare_images`` runs in the import's image threads (p2w_search/threads.py), ahead of the
row being saved; ``attach_images`` makes each saved product's images the list prepared, in one
query and one INSERT per chunk of rows, and notes every file it writes so that the import can
delete them again when it does not commit.
"""

from collections import defaultdict
from dataclasses import dataclass
from functools import partial

from django.core.files.base import ContentFile

from p2w_search.conf import app_settings
from p2w_search.fetching import FetchRefused, fetch_image, is_url
from p2w_search.files import public_file
from p2w_search.imaging import ImageRejected
from p2w_search.models import ProductImage
from p2w_search.product_images import delete_files_on_commit
from p2w_search.threads import run_all
from p2w_search.uploads.archive import EntryDamaged, normalise_name

__all__ = ["PreparedImage", "prepare_images", "attach_images"]


@dataclass(frozen=True)
class PreparedImage:
    """An image of a row, checked and ready to store: the upload's SHA-256 and the copy that is served."""

    sha256: str
    file: ContentFile  # files.public_file: the pixels only, no metadata, nothing appended


def prepare_images(names, archive):
    """Return ``(images, problems)``: each image read, checked and copied for serving, once per file."""
    limit = int(app_settings.IMPORT_MAX_IMAGES_PER_ROW)
    if len(names) > limit:
        return [], [{"field": "images", "reason": f"the row names {len(names)} images, more than the limit of "
                                                  f"{limit}"}]
    images, problems, seen_names, seen_files = [], [], set(), set()
    for name in names:
        key = name if is_url(name) else normalise_name(name)
        if key in seen_names:
            continue
        seen_names.add(key)
        try:
            data = _fetch(name) if is_url(name) else _read(archive, name)
            digest, file = public_file(data, name)
        except KeyError:
            problems.append({"field": "images", "reason": f"missing image {name!r}"})
            continue
        except FetchRefused as exc:
            problems.append({"field": "images", "reason": str(exc)})
            continue
        except ImageRejected as exc:
            problems.append({"field": "images", "reason": f"{name!r}: {exc.reason}"})
            continue
        except EntryDamaged as exc:
            problems.append({"field": "images", "reason": f"{name!r} in the zip is damaged: {exc}"})
            continue
        if digest in seen_files:
            continue  # the same file twice in one product: shown and embedded once
        seen_files.add(digest)
        images.append(PreparedImage(sha256=digest, file=file))
    return images, problems


def _fetch(name):
    """``fetch_image(name)``; a URL that cannot even be parsed or resolved is refused as one it may not fetch.

    Python raises ValueError for a port out of range or a broken ``[`` of an IPv6 address
    (``urlsplit``), and UnicodeError for a host name with an empty or over-long label (IDNA): one
    such cell failed the whole import as a server error, where it is the row's error.
    """
    try:
        return fetch_image(name)
    except FetchRefused:
        raise
    except UnicodeError:
        raise FetchRefused(f"not a URL that can be fetched: {name!r} (its host name is no valid DNS name)") from None
    except ValueError as exc:
        raise FetchRefused(f"not a URL that can be fetched: {name!r} ({exc})") from None


def _read(archive, name):
    if archive is None:
        raise KeyError(name)
    return archive.read(name)


def attach_images(products, *, written):
    """Make each product's images the given list, in order; return the images added or changed.

    ``products`` is ``[(product, [PreparedImage, ...]), ...]``. An image whose upload has
    the SHA-256 already at its position is left alone. One query finds (and locks) the products'
    current images and one INSERT adds the new ones (a query per product and image made
    the import the slow part of an ingest, bench/results/ingest.md). The names of the
    files written are appended to ``written``; files replaced or removed are deleted once
    the transaction commits. The files are written side by side (threads.run_all).
    """
    current = defaultdict(dict)  # product id -> position -> image
    # This app's own images only: a mirror of the shop's image model (source_pk) and its file are the shop's.
    # Locked until the import commits: one deleted meanwhile (in the admin, say) would be updated in vain below, and
    # the rows that name it (its embeddings, the job's images) would fail the whole import at its commit.
    locked = ProductImage.objects.select_for_update().filter(product_id__in=[product.pk for product, _ in products],
                                                             source_pk="")
    for image in locked:
        current[image.product_id][image.position] = image
    added, changed, replaced, removed, to_write = [], [], [], [], []
    for product, images in products:
        existing = current.pop(product.pk, {})
        for position, prepared in enumerate(images):
            image = existing.pop(position, None)
            if image is not None and image.sha256 == prepared.sha256:
                continue
            if image is None:
                image = ProductImage(product=product, position=position)
                added.append(image)
            else:
                replaced.append(image.file.name)
                changed.append(image)
            image.sha256 = prepared.sha256
            to_write.append((image, prepared))
        removed.extend(existing.values())  # positions the new list no longer has
    # Side by side: each stored name is a new one (models.image_path). Each name is noted as soon as its file
    # exists: a failed write leaves the others to be deleted.
    run_all(partial(_write_file, written=written), to_write)
    ProductImage.objects.bulk_create(added)
    ProductImage.objects.bulk_update(changed, ["sha256", "file"])  # no save signals: queued by the caller
    ProductImage.objects.filter(pk__in=[image.pk for image in removed]).delete()  # files go with the signal
    delete_files_on_commit(replaced)
    return added + changed


def _write_file(image_and_prepared, *, written):
    image, prepared = image_and_prepared
    image.file.save(prepared.file.name, prepared.file, save=False)
    written.append(image.file.name)  # list.append is atomic: threads may note their files at once

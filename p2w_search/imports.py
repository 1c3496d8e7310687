"""Catalog imports: a manifest (CSV or JSON Lines) plus a zip of images, validated row by row.

The shop decides what a row is: ``P2W_SEARCH["IMPORT_SERIALIZER"]`` names a DRF
serializer for one row, with ``save(merchant=...)`` returning the product (an upsert by
merchant and SKU), and two class methods, ``merchant_for(user)`` and
``unlist_missing(merchant, skus)``. This module does the rest: parsing, the archive's
safety, per-row errors with row numbers, the skip/reject policy, one transaction (nothing
half-written), content hashes (an unchanged image is not embedded again), and the job.
"""

import csv
import hashlib
import io
import json
import logging
import posixpath
import stat
import zipfile
from collections import defaultdict

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.module_loading import import_string

from p2w_search import indexing
from p2w_search.conf import app_settings
from p2w_search.fetching import FetchRefused, fetch_image, is_url
from p2w_search.imaging import ImageRejected, load_image
from p2w_search.models import ImageEmbedding, ImportJob, ProductImage

__all__ = [
    "ManifestError", "ArchiveRejected", "import_serializer", "parse_manifest", "check_archive",
    "pack_images", "attach_images", "run_import", "job_progress",
]

logger = logging.getLogger(__name__)

IMAGE_SEPARATOR = ";"


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (not a row's fault)."""


class ArchiveRejected(ValueError):
    """The archive is unsafe or unreadable; the message says why."""


def import_serializer():
    path = app_settings.IMPORT_SERIALIZER
    if not path:
        from p2w_search.conf import P2WImproperlyConfigured

        raise P2WImproperlyConfigured("Set P2W_SEARCH['IMPORT_SERIALIZER'] to the serializer of one catalog row.")
    return import_string(path)


def parse_manifest(data, name):
    """Return ``(columns, rows)``: rows as ``(row_number, dict)``, numbered as a spreadsheet shows them.

    CSV: a header row (row 1); several images in one cell are separated by ``;``.
    JSON Lines (``.jsonl``/``.ndjson``): one object per line, ``images`` a list or a string.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError("the manifest is not UTF-8 text") from None
    if name.lower().endswith((".jsonl", ".ndjson")):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append((number, {"__error__": f"not valid JSON: {exc.msg}"}))
                continue
            if not isinstance(row, dict):
                row = {"__error__": "a line must be a JSON object"}
            elif isinstance(row.get("images"), str):
                row["images"] = [n.strip() for n in row["images"].split(IMAGE_SEPARATOR) if n.strip()]
            rows.append((number, row))
        return None, rows
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ManifestError("the CSV manifest has no header row")
    columns = [c.strip() for c in reader.fieldnames]
    rows = []
    for number, row in enumerate(reader, start=2):
        if None in row:  # more cells than columns
            rows.append((number, {"__error__": "more cells than columns in the header"}))
            continue
        cleaned = {key.strip(): (value or "").strip() for key, value in row.items()}
        if "images" in cleaned:
            cleaned["images"] = [n.strip() for n in cleaned["images"].split(IMAGE_SEPARATOR) if n.strip()]
        rows.append((number, {k: v for k, v in cleaned.items() if v != "" or k in ("sku", "images")}))
    return columns, rows


def _is_unsafe(name):
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return True
    return any(part == ".." for part in name.split("/"))


def check_archive(file):
    """Return ``{name: ZipInfo}`` of the images in a zip, or raise ArchiveRejected.

    Refused: a path that climbs out of the archive (``../x.jpg``) or is absolute, links,
    encrypted entries, too many files, a total that inflates past the limit, and entries
    compressed so much that they can only be a bomb. Nothing is inflated to check this.
    """
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError):
        raise ArchiveRejected("the archive is not a readable zip file") from None
    entries = [info for info in archive.infolist() if not info.is_dir()]
    if len(entries) > app_settings.IMPORT_MAX_FILES:
        raise ArchiveRejected(f"the archive holds {len(entries)} files, more than {app_settings.IMPORT_MAX_FILES}")
    total = 0
    for info in entries:
        if _is_unsafe(info.filename):
            raise ArchiveRejected(f"unsafe path in the archive: {info.filename!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveRejected(f"links are not allowed in the archive: {info.filename!r}")
        if info.flag_bits & 0x1:
            raise ArchiveRejected(f"encrypted entry in the archive: {info.filename!r}")
        if info.file_size > app_settings.MAX_IMAGE_BYTES:
            raise ArchiveRejected(f"{info.filename!r} inflates to {info.file_size} bytes, more than the image limit "
                                  f"of {app_settings.MAX_IMAGE_BYTES}")
        if info.compress_size and info.file_size / info.compress_size > app_settings.IMPORT_MAX_RATIO:
            raise ArchiveRejected(f"{info.filename!r} is compressed {info.file_size // info.compress_size}:1, "
                                  "which only a zip bomb is")
        total += info.file_size
    if total > app_settings.IMPORT_MAX_BYTES:
        raise ArchiveRejected(f"the archive inflates to {total} bytes, more than {app_settings.IMPORT_MAX_BYTES}")
    return {posixpath.normpath(info.filename): info for info in entries}


def pack_images(files):
    """Pack uploaded image files ``{name: bytes}`` into a zip, so every import reads one archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(posixpath.basename(name), data)
    return buffer.getvalue()


def attach_images(products):
    """Make each product's images the given list, in order; return the images added or changed.

    ``products`` is ``[(product, [(name, bytes), ...]), ...]``. An image whose content
    (SHA-256) is already at its position is left alone. One query finds the products'
    current images and one INSERT adds the new ones: a catalog upload is mostly new images,
    and a query per product and image made the import the slow part of an ingest
    (bench/results/ingest.md).
    """
    current = defaultdict(dict)  # product id -> position -> image
    for image in ProductImage.objects.filter(product__in=[product for product, _ in products]):
        current[image.product_id][image.position] = image
    added, changed, removed = [], [], []
    for product, images in products:
        existing = current.pop(product.pk, {})
        for position, (name, data) in enumerate(images):
            digest = hashlib.sha256(data).hexdigest()
            image = existing.pop(position, None)
            if image is not None and image.sha256 == digest:
                continue
            if image is None:
                image = ProductImage(product=product, position=position)
                added.append(image)
            else:
                changed.append(image)
            image.sha256 = digest
            image.file.save(posixpath.basename(name), ContentFile(data), save=False)
        removed.extend(existing.values())  # positions the new list no longer has
    ProductImage.objects.bulk_create(added)
    for image in changed:
        image.save()
    ProductImage.objects.filter(pk__in=[image.pk for image in removed]).delete()
    return added + changed


def run_import(job, *, progress=None):
    """Validate and import ``job``; set its counts, errors and state. Return the job.

    ``progress(done, total)`` is called as rows are checked.
    """
    job.state = ImportJob.State.RUNNING
    job.save(update_fields=["state", "updated_at"])
    serializer_class = import_serializer()
    merchant = serializer_class.merchant_by_key(job.merchant_key)
    with job.manifest.open("rb") as handle:
        columns, rows = parse_manifest(handle.read(), job.manifest.name)
    archive_entries, archive = {}, None
    if job.archive:
        archive = zipfile.ZipFile(job.archive.open("rb"))
        archive_entries = check_archive(job.archive.open("rb"))

    errors, valid, first_seen, fetched = [], [], {}, {}  # fetched: image URL -> bytes
    known = set(serializer_class().fields)
    for column in sorted(set(columns or ()) - known):
        errors.append({"row": 1, "field": column, "reason": "unknown column"})
    for number, row in rows:
        problems, serializer = _row_problems(row, known, serializer_class, archive, archive_entries, first_seen,
                                             number, fetched)
        if problems:
            errors.extend({"row": number, **problem} for problem in problems)
        else:
            valid.append((row, serializer))
        if progress is not None:
            progress(len(valid) + len({e["row"] for e in errors if e["row"] != 1}), len(rows))
    job.rows_total = len(rows)
    job.errors = errors
    rejected_rows = {e["row"] for e in errors if e["row"] != 1}
    job.rows_rejected = len(rejected_rows)
    if errors and job.policy == ImportJob.Policy.REJECT:
        job.rows_accepted = 0
        job.state = ImportJob.State.REJECTED
        job.message = f"{len(errors)} problems; nothing was imported (policy: reject the whole upload)"
        job.save()
        return job

    with transaction.atomic():
        products, skus = [], []
        for row, serializer in valid:  # each row was validated once, above
            images = [(name, fetched.get(name) or _image_data(name, archive, archive_entries)) for name in row["images"]]
            products.append((serializer.save(merchant=merchant), images))
            skus.append(serializer.validated_data["sku"])
        changed = attach_images(products)
        if job.full_sync:
            job.products_unlisted = serializer_class.unlist_missing(merchant, skus)
        indexing.queue_images(changed)  # sent once the transaction commits
        job.rows_accepted = len(valid)
        job.image_ids = [image.pk for image in changed]
        job.state = ImportJob.State.DONE
        job.message = (f"{len(valid)} rows imported, {len(changed)} images to embed"
                       + (f", {job.rows_rejected} rows skipped" if job.rows_rejected else ""))
        job.save()
    return job


def _row_problems(row, known, serializer_class, archive, entries, first_seen, number, fetched):
    """Return ``(problems, serializer)`` of one manifest row; the serializer is valid when there are none."""
    if "__error__" in row:
        return [{"field": None, "reason": row["__error__"]}], None
    problems = [{"field": key, "reason": "unknown column"} for key in sorted(set(row) - known)]
    serializer = serializer_class(data={k: v for k, v in row.items() if k in known})
    if not serializer.is_valid():
        for field, messages in serializer.errors.items():
            problems.append({"field": field, "reason": " ".join(str(m) for m in _flat(messages))})
        return problems, serializer
    sku = serializer.validated_data["sku"]
    if sku in first_seen:
        problems.append({"field": "sku", "reason": f"duplicate sku {sku!r}, first on row {first_seen[sku]}"})
    first_seen.setdefault(sku, number)
    for name in serializer.validated_data["images"]:
        try:
            data = _image_data(name, archive, entries)
            load_image(data, max_bytes=app_settings.MAX_IMAGE_BYTES, max_pixels=app_settings.MAX_IMAGE_PIXELS)
        except KeyError:
            problems.append({"field": "images", "reason": f"missing image {name!r}"})
        except FetchRefused as exc:
            problems.append({"field": "images", "reason": str(exc)})
        except ImageRejected as exc:
            problems.append({"field": "images", "reason": f"{name!r}: {exc.reason}"})
        else:
            if is_url(name):
                fetched[name] = data  # fetched once; archive entries are read again when imported
    return problems, serializer


def _image_data(name, archive, entries):
    """The bytes of an image named in a row: an archive entry or, where allowed, a URL."""
    if is_url(name):
        return fetch_image(name)
    return _read(archive, entries[posixpath.normpath(name)])


def _read(archive, info):
    with archive.open(info) as entry:
        return entry.read(app_settings.MAX_IMAGE_BYTES + 1)  # the header's size may lie; never read past the limit


def _flat(messages):
    if isinstance(messages, dict):
        for value in messages.values():
            yield from _flat(value)
    elif isinstance(messages, list):
        for value in messages:
            yield from _flat(value)
    else:
        yield messages


def job_progress(job):
    """Rows and images of a job: what a merchant polls for."""
    states = ImageEmbedding.objects.filter(image_id__in=job.image_ids, model__state="serving")
    return {
        "id": job.pk, "state": job.state, "policy": job.policy, "full_sync": job.full_sync,
        "rows_total": job.rows_total, "rows_accepted": job.rows_accepted, "rows_rejected": job.rows_rejected,
        "products_unlisted": job.products_unlisted, "images_total": len(job.image_ids),
        "images_embedded": states.filter(state=ImageEmbedding.State.READY).count(),
        "images_failed": states.filter(state=ImageEmbedding.State.FAILED).count(),
        "errors": job.errors, "message": job.message, "created_at": job.created_at, "updated_at": job.updated_at,
    }

"""Importing a merchant's catalog upload: every row checked, the good ones written in one transaction.

The shop decides what a row is: ``P2W_SEARCH["IMPORT_SERIALIZER"]`` names a DRF
serializer for one row (with ``sku`` and ``images`` fields) whose ``save(merchant=...)``
creates or updates the product with that SKU, and four class methods:
``merchant_for(user)``, ``merchant_by_key(key)``, ``listed_skus(merchant)`` and
``unlist(merchant, skus)`` (returns how many it unlisted). SKUs are compared in Unicode NFC
(``manifest.sku_key``): rows that name one SKU in two forms are duplicates, and a full sync
spares a listed product whose SKU reads as one the manifest names; the shop's ``save``
(``save_rows``) should match an existing product the same way. Optional, for speed:
``save_rows(merchant, rows)``, which saves the validated data of many rows at once and
returns their products in the same order; with it, one serializer instance validates every
row (as DRF's ``many=True`` does) instead of a new one per row. Optional, for the merchant
pages: ``products(merchant)`` (the merchant's products, a QuerySet of the product model),
``merchants_for_staff(user)`` (the merchants staff may act for) and ``example_row()`` (one
row for the template CSV, column -> cell), and ``catalog_skus(merchant)`` (the SKUs of all the
merchant's products, listed or not, as stored: an import refuses a new SKU that looks the same
as one of them; without it, as one of the listed ones). This module does the rest.

What an import promises (README, "Merchants: catalog uploads"):
- nothing half-written: one transaction; files it wrote are deleted again if it does not commit;
- ``policy=reject`` writes nothing when any row is bad; ``skip`` writes the good rows;
- a SKU the manifest names is never unlisted by a full sync, whatever happened to its row (a row refused for
  a SKU with a character no one sees or one that looks like another names the SKU a reader sees,
  ``manifest.seen_sku``), and a full sync that would unlist more than ``FULL_SYNC_MAX_UNLIST_SHARE`` of the listed
  products, or that accepted no row, is refused unless ``confirm_unlist`` is the exact count;
- a full sync unlists only products that were listed when the upload was received, or that
  the merchant's uploads still waiting then list: one the merchant listed otherwise while the
  upload waited for a worker (the product API, the admin) stays listed;
- ambiguity is refused, never resolved silently: a SKU on two rows rejects both, written alike or
  in two Unicode forms that read the same; a new SKU that looks the same as another of the catalog
  or of the file, in letters of another alphabet (a Cyrillic ``А-1`` beside ``A-1``), is rejected;
- every rejected row is in the job's rejected-rows file, with the reason, ready to fix and send again.
"""

import json
import logging
from collections import deque
from contextlib import contextmanager

from django.core.exceptions import ObjectDoesNotExist
from django.core.files.base import ContentFile
from django.db import transaction
from django.template.defaultfilters import pluralize
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from p2w_search import dispatch, indexing
from p2w_search.conf import P2WImproperlyConfigured, app_settings
from p2w_search.locks import advisory_lock, text_key
from p2w_search.models import ImportJob
from p2w_search.product_images import delete_files_now
from p2w_search.threads import image_threads, thread_count
from p2w_search.uploads import limits, look_alike
from p2w_search.uploads.archive import Archive, ArchiveRejected
from p2w_search.uploads.manifest import ManifestError, read_manifest, sku_key
from p2w_search.uploads.report import JobReport
from p2w_search.uploads.row_images import PreparedImage, attach_images, prepare_images
from p2w_search.uploads.rows import (
    ROWS_SHOWN,
    RejectedRows,
    check_manifest,
    check_row,
    import_serializer,
    known_columns,
    row_sku,
    scan_skus,
    unnamed,
)

# The rows' and the images' parts live in rows.py and row_images.py; their names stay importable from here.
__all__ = [
    "import_serializer", "known_columns", "row_sku", "unnamed", "check_manifest", "RejectedRows", "ROWS_SHOWN",
    "create_job", "full_sync_refusal", "no_row_refusal", "run_import", "merchant_lock", "merchant_lock_key",
    "attach_images", "PreparedImage",
]

logger = logging.getLogger(__name__)

# Rows whose products are saved together: bounded memory, one image lookup and INSERT per chunk.
CHUNK_ROWS = 100
CHUNK_BYTES = 32 * 1024 * 1024
# How many rows per image thread (threads.py) may be prepared ahead of the one being saved: decoding,
# checking and encoding the served copy is most of an import's time (bench/ingest.py profiles it), and
# the embedding workers wait for the import's commit, so the cores are free meanwhile.
ROWS_AHEAD_PER_THREAD = 4


class _Refused(Exception):
    """The job is refused as a whole; nothing it wrote may stay."""


def create_job(*, owner, merchant_key, values, send=True, limited=True):
    """Create the job of a checked upload (the API's ``UploadSerializer.validated_data``) and send it on commit.

    With Redis down the job is still saved, and the sweep sends it later. The API, the
    merchant pages and ``p2w_import`` (``send=False``: it imports the job itself) create jobs
    here. ``limited``: the job takes one of the merchant's ``IMPORT_MAX_WAITING`` places, or
    limits.TooManyWaiting is raised (``p2w_import`` is not limited). When the job's row is not
    saved, its files are deleted again: no job would ever refer to them. A full sync's job keeps
    the SKUs it counts as listed (``listed_at_upload``, ``_listed_now``): it will unlist no other.
    """
    job = ImportJob(owner=owner, merchant_key=merchant_key, policy=values["policy"], full_sync=values["full_sync"],
                    confirm_unlist=values.get("confirm_unlist"))
    try:
        listed = _listed_now(merchant_key) if job.full_sync else None
        if listed is not None:
            job.listed_at_upload.save("listed.json", ContentFile(listed), save=False)
        job.manifest.save(values["manifest"].name, values["manifest"], save=False)
        archive = values.get("archive") or values.get("images")
        if archive:
            job.archive.save("images.zip", archive, save=False)
        with transaction.atomic():
            # After the files are stored, not around it: the merchant's other uploads wait for this lock, and copying
            # 2 GiB takes long. The API and the page looked before reading the files (limits.check_waiting).
            if limited:
                limits.hold_place(merchant_key)
            job.save()
            if send:
                dispatch.send(dispatch.RUN_IMPORT, args=(job.pk,))
    except BaseException:
        for file in (job.manifest, job.archive, job.listed_at_upload):
            if file:
                file.delete(save=False)
        raise
    return job


def _listed_now(merchant_key):
    """What a full sync received now will count as listed: a JSON list of texts; None when it cannot be known.

    The merchant's listed SKUs, and the SKUs its uploads still waiting name: those uploads were
    sent first, so the merchant counts their products in (two full syncs sent one after the
    other leave the second's catalog). The waiting uploads are read first: one that ends in
    between has listed its products by the time they are read. None (the sync then unlists
    every listed product its file leaves out) when a waiting upload's manifest cannot be read.
    """
    serializer_class = import_serializer()
    sku_field = serializer_class().fields["sku"]
    named = set()
    try:
        for waiting in ImportJob.objects.filter(merchant_key=merchant_key, state__in=limits.WAITING):
            named.update(scan_skus(waiting, sku_field)[0])
    except (OSError, ManifestError) as exc:
        logger.warning("a full sync of merchant %s will unlist all its file leaves out: %s", merchant_key, exc)
        return None
    listed = serializer_class.listed_skus(serializer_class.merchant_by_key(merchant_key))
    return json.dumps(sorted({sku_key(str(sku)) for sku in listed} | {str(sku) for sku in named})).encode()


def _listed_at_upload(job):
    """The keys (``sku_key``) of the texts of the SKUs listed when ``job``'s upload was received; None for a job
    saved without them."""
    if not job.listed_at_upload:  # a job of a version before they were kept
        return None
    with job.listed_at_upload.open("rb") as handle:
        return {sku_key(sku) for sku in json.load(handle)}  # kept as written by versions before keys were


# Namespace of the advisory locks that keep a merchant's imports to one at a time.
IMPORT_LOCK = 0x7032


def merchant_lock(merchant_key):
    """Try to take the lock that keeps ``merchant_key``'s imports to one at a time; yield whether it was taken.

    Two full syncs of one merchant must not interleave, nor may a worker the sweep sent a slow
    job to run it beside the process already running it (the task and ``p2w_import`` both take
    it). A session lock (p2w_search/locks.py): a process that dies does not keep it.
    """
    return advisory_lock(*merchant_lock_key(merchant_key))


def merchant_lock_key(merchant_key):
    """The two keys of ``merchant_lock``'s advisory lock (int4 each, as the two-key form takes)."""
    return [IMPORT_LOCK, text_key(merchant_key)]


def run_import(job, *, progress=None):
    """Validate and import ``job``; set its counts, errors and state. Return the job.

    ``progress(done, total)`` is called as rows are checked.
    """
    serializer_class = import_serializer()
    try:
        merchant = serializer_class.merchant_by_key(job.merchant_key)
    except (ObjectDoesNotExist, ValueError):  # deleted while the upload waited: no retry brings it back
        logger.warning("import %s did not run: its merchant %r no longer exists", job.pk, job.merchant_key)
        _fail(job, MERCHANT_GONE)
        return job
    job.state, job.started_at = ImportJob.State.RUNNING, timezone.now()
    job.save(update_fields=["state", "started_at", "updated_at"])
    report = JobReport(job)
    written = []  # names of the image files written, deleted again unless the transaction commits
    try:
        try:
            with transaction.atomic():
                _import(job, serializer_class, merchant, report, written, progress)
                _end(job, report)
        except (_Refused, ManifestError, ArchiveRejected) as refusal:
            delete_files_now(written)
            written.clear()
            job.rows_accepted, job.products_unlisted, job.unlisted_skus = 0, 0, []
            job.state = ImportJob.State.REJECTED
            job.message = {_Refused: "{}", ManifestError: "The manifest cannot be used: {}.",
                           ArchiveRejected: "The archive is refused: {}."}[type(refusal)].format(refusal)
            _end(job, report)
    except BaseException as exc:
        delete_files_now(written)
        report.discard(job)
        if _storage_fault(exc):
            _fail(job, STORAGE_FAILED.format(exc.strerror or type(exc).__name__))
        raise
    finally:
        report.close()
    return job


# An import's files could not be written or read (a full disk, a read-only folder, a file gone): the server's
# problem, never the rows'. The job fails as a whole, saying so; the log has the path.
STORAGE_FAILED = ("The import failed: the server could not store or read its files ({}); nothing was imported. "
                  "Try again later, or tell the shop's staff if it happens again.")


# The upload's merchant was deleted before its import ran. A job, not a server error: the task ends it and logs no
# traceback, and its files go once their retention ends, as any ended job's do.
MERCHANT_GONE = "The import did not run: the merchant of this upload no longer exists; nothing was imported."


def _storage_fault(exc):
    """Whether ``exc`` is a file storage's refusal; ConnectionError and TimeoutError pass, and are retried."""
    return isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError))


def _fail(job, message):
    """End ``job`` FAILED with ``message``; only those fields are saved (the others are of the rolled-back run)."""
    job.state, job.message, job.ended_at = ImportJob.State.FAILED, message, timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(state=job.state, message=message, ended_at=job.ended_at,
                                               updated_at=job.ended_at)


def _end(job, report):
    report.store(job)
    job.ended_at = timezone.now()
    job.save()


def _import(job, serializer_class, merchant, report, written, progress):
    sku_field = serializer_class().fields["sku"]
    skus, job.rows_total, mixed = scan_skus(job, sku_field)
    duplicates = {key: numbers for key, numbers in skus.items() if len(numbers) > 1}
    to_unlist, listed_since, listed = [], 0, None
    if job.full_sync:
        listed = set(serializer_class.listed_skus(merchant))
        missing, before = unnamed(listed, skus), _listed_at_upload(job)
        to_unlist = missing if before is None else [sku for sku in missing if sku_key(str(sku)) in before]
        listed_since = len(missing) - len(to_unlist)
        _check_full_sync(job, len(to_unlist), listed=len(listed))
    look_alikes = look_alike.look_alikes(skus, look_alike.catalog_skus(serializer_class, merchant, listed))
    known = known_columns(serializer_class)
    accepted = checked = 0
    writer = _RowWriter(serializer_class)
    chunk = _Chunk(job, writer, merchant, written)
    threads, rows_ahead = image_threads(), ROWS_AHEAD_PER_THREAD * thread_count()

    def settle(row, problems, valid, preparing):
        """Count the row, and add it to the chunk or to the report once its images are ready."""
        nonlocal accepted, checked
        images, image_problems = preparing.result() if preparing is not None else ([], [])
        problems = problems + image_problems
        checked += 1
        if problems:
            report.reject(row, problems)
        elif not report.errors_total or job.policy == ImportJob.Policy.SKIP:
            chunk.add(valid, images)
            accepted += 1
        if chunk.full():
            chunk.flush()
        if progress is not None:
            progress(checked, job.rows_total)

    with _opened(job) as (columns, rows, archive):
        report.start(columns, job.manifest.name)
        ahead = deque()  # rows whose images are being prepared, in the manifest's order
        for row in rows:
            problems, valid, names = check_row(row, columns, known, writer, sku_field, duplicates, mixed)
            looks_like = look_alike.look_alike_problem(row, columns, sku_field, look_alikes)
            if looks_like:
                problems, valid, names = look_alike.with_sku_problem(problems, looks_like), None, []
            ahead.append((row, problems, valid, threads.submit(prepare_images, names, archive) if valid else None))
            if len(ahead) > rows_ahead:
                settle(*ahead.popleft())
        while ahead:
            settle(*ahead.popleft())
        chunk.flush()
    job.rows_accepted, job.rows_rejected = accepted, report.rows_rejected
    if report.errors_total and job.policy == ImportJob.Policy.REJECT:
        raise _Refused(f"{report.errors_total} problems in {report.rows_rejected} rows; nothing was imported "
                       "(policy: reject the whole upload)")
    if job.full_sync:
        if not accepted and (refusal := no_row_refusal(len(to_unlist), confirm=job.confirm_unlist)):
            raise _Refused(refusal)
        job.products_unlisted = serializer_class.unlist(merchant, to_unlist)
        job.unlisted_skus = to_unlist[:int(app_settings.IMPORT_ERRORS_SHOWN)]
    job.state = ImportJob.State.DONE
    # Words that stay true once the images are embedded (the pages show the live counts beside them).
    images, skipped, unlisted = chunk.images_queued, report.rows_rejected, job.products_unlisted
    job.message = (f"{accepted} row{pluralize(accepted)} imported, {images} image{pluralize(images)} queued for "
                   "embedding"
                   + (f", {skipped} row{pluralize(skipped)} skipped" if skipped else "")
                   + (f", {unlisted} product{pluralize(unlisted)} unlisted" if job.full_sync else "")
                   + (f" ({listed_since} listed after the upload was received stay listed)" if listed_since else ""))


def full_sync_refusal(count, listed, *, confirm):
    """Why a full sync that unlists ``count`` of ``listed`` products is refused, or None when it may run.

    More than ``FULL_SYNC_MAX_UNLIST_SHARE`` of the listed products, unless ``confirm`` is
    the exact count. The import and the merchant pages (which count before anything is
    sent) both ask here, so they refuse alike and in the same words.
    """
    share = float(app_settings.FULL_SYNC_MAX_UNLIST_SHARE)
    if count and count > share * listed and confirm != count:
        return _refusal(count, listed, because=f"more than the {share:.0%} a sync may unlist unconfirmed")
    return None


def _check_full_sync(job, count, *, listed):
    refusal = full_sync_refusal(count, listed, confirm=job.confirm_unlist)
    if refusal:
        raise _Refused(refusal)


def no_row_refusal(count, *, confirm):
    """Why a full sync that accepted no row of its file, and unlists ``count``, is refused; None when ``confirm`` is
    ``count``. The merchant pages' check says it before the upload (``merchant.forms.count_full_sync``)."""
    return None if confirm == count else _refusal(count, None, because="no row of the file could be imported")


def _refusal(count, listed, *, because):
    of = f" of your {listed} listed products" if listed is not None else ""
    return (f"Full sync refused: it would unlist {count}{of}, and {because}. Nothing was changed. To do it on "
            f"purpose, upload the file again with full_sync=true and confirm_unlist={count}.")


@contextmanager
def _opened(job):
    """``(columns, rows, archive)`` of the job's files, closed on the way out."""
    archive = None
    with job.manifest.open("rb") as handle:
        columns, rows = read_manifest(handle, job.manifest.name, max_rows=int(app_settings.IMPORT_MAX_ROWS))
        try:
            if job.archive:
                archive = Archive(job.archive.open("rb"))
            yield columns, rows, archive
        finally:
            rows.close()
            if archive is not None:
                archive.close()
                job.archive.close()


class _RowWriter:
    """Validates rows and saves them: many at once through the shop's ``save_rows`` when it has one.

    With ``save_rows``, one serializer instance validates every row, as DRF's ``many=True``
    does: a new instance per row deep-copies all its fields, which cost the import about as
    much as the rest of the validation (bench/ingest.py profiles the import). Without it,
    each row gets its own serializer and ``save(merchant=...)``, one row at a time.
    """

    def __init__(self, serializer_class):
        self.serializer_class = serializer_class
        self.save_rows = getattr(serializer_class, "save_rows", None)
        self.shared = serializer_class() if self.save_rows is not None else None

    def validate(self, data):
        """Return ``(valid, validated_data, errors)``; ``errors`` is ``{field: messages}``, empty when valid."""
        if self.shared is None:
            serializer = self.serializer_class(data=data)
            if not serializer.is_valid():
                return None, None, serializer.errors
            return serializer, serializer.validated_data, {}
        try:
            validated = self.shared.run_validation(data)
        except ValidationError as exc:  # a serializer's errors are always {field: messages}
            return None, None, exc.detail
        return validated, validated, {}

    def save(self, merchant, valid):
        """Save the rows ``valid`` (from ``validate``); return their products in order."""
        if self.save_rows is None:
            return [serializer.save(merchant=merchant) for serializer in valid]
        products = list(self.save_rows(merchant, valid))
        if len(products) != len(valid):
            raise P2WImproperlyConfigured(f"{self.serializer_class.__qualname__}.save_rows returned "
                                          f"{len(products)} products for {len(valid)} rows")
        return products


class _Chunk:
    """Valid rows waiting to be saved together."""

    def __init__(self, job, writer, merchant, written):
        self.job, self.writer, self.merchant, self.written = job, writer, merchant, written
        self.rows, self.bytes, self.images_queued = [], 0, 0

    def add(self, valid, images):
        self.rows.append((valid, images))
        self.bytes += sum(image.file.size for image in images)

    def full(self):
        return len(self.rows) >= CHUNK_ROWS or self.bytes >= CHUNK_BYTES

    def flush(self):
        if not self.rows:
            return
        products = self.writer.save(self.merchant, [valid for valid, _ in self.rows])
        changed = attach_images(list(zip(products, [images for _, images in self.rows])), written=self.written)
        indexing.queue_images(changed)  # sent once the transaction commits
        ImportJob.images.through.objects.bulk_create(
            [ImportJob.images.through(importjob_id=self.job.pk, productimage_id=image.pk) for image in changed],
            ignore_conflicts=True,
        )
        self.images_queued += len(changed)
        self.rows, self.bytes = [], 0

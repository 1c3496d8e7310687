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
row for the template CSV, column -> cell). This module does the rest.

What an import promises (README, "Merchants: catalog uploads"):
- nothing half-written: one transaction; files it wrote are deleted again if it does not commit;
- ``policy=reject`` writes nothing when any row is bad; ``skip`` writes the good rows;
- a SKU the manifest names is never unlisted by a full sync, whatever happened to its row,
  and a full sync that would unlist more than ``FULL_SYNC_MAX_UNLIST_SHARE`` of the listed
  products, or that accepted no row, is refused unless ``confirm_unlist`` is the exact count;
- a full sync unlists only products that were listed when the upload was received, or that
  the merchant's uploads still waiting then list: one the merchant listed otherwise while the
  upload waited for a worker (the product API, the admin) stays listed;
- ambiguity is refused, never resolved silently: a SKU on two rows rejects both, written alike or
  in two Unicode forms that read the same;
- every rejected row is in the job's rejected-rows file, with the reason, ready to fix and send again.
"""

import csv
import io
import json
import logging
import tempfile
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty, get_error_detail

from p2w_search import dispatch, indexing
from p2w_search.conf import P2WImproperlyConfigured, app_settings
from p2w_search.fetching import FetchRefused, fetch_image, is_url
from p2w_search.files import public_file
from p2w_search.imaging import ImageRejected
from p2w_search.locks import advisory_lock, text_key
from p2w_search.models import ImportJob, ProductImage
from p2w_search.product_images import delete_files_now, delete_files_on_commit
from p2w_search.threads import image_threads, run_all, thread_count
from p2w_search.uploads import limits
from p2w_search.uploads.archive import Archive, ArchiveRejected, EntryDamaged, normalise_name
from p2w_search.uploads.manifest import (
    ERROR_COLUMN,
    ManifestError,
    load_json_line,
    manifest_format,
    raw_sku,
    read_manifest,
    sku_key,
    sku_problem,
    spreadsheet_cell,
)

__all__ = [
    "import_serializer", "known_columns", "row_sku", "unnamed", "check_manifest", "RejectedRows", "ROWS_SHOWN",
    "create_job", "full_sync_refusal", "run_import", "merchant_lock", "attach_images", "PreparedImage",
]

logger = logging.getLogger(__name__)

# Rows whose products are saved together: bounded memory, one image lookup and INSERT per chunk.
CHUNK_ROWS = 100
CHUNK_BYTES = 32 * 1024 * 1024
# Names a message lists before it says how many more there are.
NAMES_SHOWN = 5
# Row numbers a duplicate SKU's reason lists.
DUPLICATE_ROWS_SHOWN = 10
# Rows the upload check lists of those the import will reject (it counts them all).
ROWS_SHOWN = 5
# How many rows per image thread (threads.py) may be prepared ahead of the one being saved: decoding,
# checking and encoding the served copy is most of an import's time (bench/ingest.py profiles it), and
# the embedding workers wait for the import's commit, so the cores are free meanwhile.
ROWS_AHEAD_PER_THREAD = 4


def import_serializer():
    """Return the shop's serializer of one manifest row (``P2W_SEARCH["IMPORT_SERIALIZER"]``)."""
    path = app_settings.IMPORT_SERIALIZER
    if not path:
        raise P2WImproperlyConfigured("Set P2W_SEARCH['IMPORT_SERIALIZER'] to the serializer of one catalog row.")
    return import_string(path)


def known_columns(serializer_class=None):
    """The columns a manifest may have: the row serializer's fields (and the rejected-rows file's error column)."""
    return set((serializer_class or import_serializer())().fields) | {ERROR_COLUMN}


def row_sku(row, columns, sku_field):
    """The SKU a row names as the row serializer's ``sku_field`` stores it, whether or not the row is valid.

    None when it names none. Duplicates are found, and a full sync spares SKUs, by this
    value's ``sku_key``: a JSON Lines ``1.5`` and ``"1.5"`` are one product once stored, and so
    are ``café`` composed and decomposed.
    """
    value = raw_sku(row, columns)
    if value is None:
        return None
    try:
        sku = sku_field.to_internal_value(value)
    except ValidationError:  # not a value the field takes (a list, say): the row's own error says so
        return None
    return None if sku == "" else sku


def unnamed(listed, named):
    """The SKUs of ``listed`` (as the shop stores them) that no key of ``named`` (``sku_key``s) reads as, sorted.

    What a full sync of a manifest that names ``named`` unlists of the listed products; the
    import and the merchant pages' count both ask here.
    """
    return sorted(sku for sku in listed if sku_key(sku) not in named)


def _names(names):
    """``'a', 'b', 'c', 'd', 'e' and 7 more``: a bounded list of names for a message."""
    shown = ", ".join(repr(name if len(name) <= 60 else name[:60] + "…") for name in names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def check_manifest(upload, *, columns_known, skus=None, rejected=None):
    """Read a whole manifest once (streamed) and raise ManifestError for what makes it unusable as a file.

    Here: the format, the size, the text encoding, the header (a column given twice, without a
    name, or unknown), quotes that never close and the row limit. With ``skus`` (a set), the
    key of the SKU each row names (``sku_key(row_sku(...))``) is added to it on the same read:
    the merchant pages count a full sync from them (``unnamed``), where reading a 50 MB manifest
    a second time doubled the cost of each check. With ``rejected`` (a RejectedRows), the rows
    the import will reject without the database are counted into it on the same read, so the
    merchant learns of them before sending the images; the other row-level problems (a price,
    an image) are the import's to report.
    """
    manifest_format(upload.name)
    if upload.size > app_settings.IMPORT_MAX_MANIFEST_BYTES:
        raise ManifestError(f"it is larger than {app_settings.IMPORT_MAX_MANIFEST_BYTES} bytes")
    columns, rows = read_manifest(upload, upload.name, max_rows=int(app_settings.IMPORT_MAX_ROWS))
    if skus is None and rejected is None:
        count = sum(1 for _ in rows)
    else:
        sku_field, count = import_serializer()().fields["sku"], 0
        for row in rows:
            count += 1
            sku = row_sku(row, columns, sku_field)
            key = None if sku is None else sku_key(sku)
            if skus is not None and key is not None:
                skus.add(key)
            if rejected is not None:
                rejected.add(row, sku, key, sku_field=sku_field, known=columns_known)
    upload.seek(0)
    if columns is not None:
        unknown = [name for name in columns if name not in columns_known]
        if unknown:
            raise ManifestError(f"unknown column{'s' if len(unknown) > 1 else ''} {_names(unknown)}; the columns "
                                f"are {', '.join(sorted(columns_known))}")
        if "sku" not in columns:
            raise ManifestError("the header has no 'sku' column")
    if not count:
        raise ManifestError("it has no rows")


def _unknown_fields(row, known):
    """The problem of a row that gives fields the row serializer does not have (a JSON Lines key), or None."""
    unknown = row.values.keys() - known
    return {"field": None, "reason": f"unknown fields: {_names(sorted(unknown))}"} if unknown else None


def _duplicate_reason(sku, key, numbers, *, mixed):
    """Why a row whose SKU ``sku`` (``key``: its ``sku_key``) is on the rows ``numbers`` is rejected.

    ``mixed``: the rows write it in more than one Unicode form; repr shows both forms alike, so the reason says so.
    """
    shown = ", ".join(str(n) for n in numbers[:DUPLICATE_ROWS_SHOWN])
    if mixed:
        return (f"sku {key!r} is on rows {shown}, written in other Unicode code points on some of them "
                "(they read the same); give each product once")
    return f"sku {sku!r} is on rows {shown}; give each product once"


def _joined(messages):
    """A serializer's messages on one field (a list, maybe nested) as one reason."""
    return " ".join(str(m) for m in _flat(messages))


def _sku_field_problems(row, sku_field):
    """The SKU field's own refusal of a row's SKU (none given, blank, too long), as the row serializer words it.

    The field only, not the serializer's ``validate_sku`` or ``validate``: those may ask the database.
    """
    try:
        sku_field.run_validation(row.values.get("sku", empty))  # what the serializer hands its sku field
    except ValidationError as exc:
        return [{"field": "sku", "reason": _joined(exc.detail)}]
    except DjangoValidationError as exc:
        return [{"field": "sku", "reason": _joined(get_error_detail(exc))}]
    return []


@dataclass
class _Shown:
    """A row the check lists: its SKU as written and its problems before and after a duplicate's reason."""

    sku: object
    key: object
    before: list
    after: list
    alone: bool  # a row that cannot be read: its one problem, no duplicate's reason (as the import)


class RejectedRows:
    """The rows of a manifest the import will reject without looking at the database, for the upload check.

    Fed one row at a time by ``check_manifest``'s single read: a row that cannot be read
    (``Row.problem``), a field the row serializer lacks, a SKU with a character no one sees
    (``sku_problem``), a SKU on two rows (both are rejected), a SKU the SKU field refuses (none,
    blank, too long). ``count`` is how many rows that is; ``errors`` lists the problems of the
    first ``ROWS_SHOWN`` of them as the import reports them (``{"row", "field", "reason"}``, in
    its order and words). A row the import also refuses for another cell (a price, an image) shows
    only these reasons; one refused only for such a cell is not counted.

    Memory: each SKU's first row number (no list of all rows: ``_scan`` keeps those for the import),
    the first forms not in NFC (as ``_scan``), and the rows shown with the numbers of their SKUs.
    A row's duplicate is found at its SKU's second row, which may come long after rows already
    shown: the first rows are kept in order, and the later ones give way.
    """

    def __init__(self, *, shown=ROWS_SHOWN):
        self.count = 0
        self._limit = shown
        self._first = {}  # sku_key -> its first row's number while that row is not counted as rejected, else 0
        self._first_forms = {}  # sku_key -> its first row's SKU, when that is not in NFC
        self._shown = {}  # row number -> _Shown
        self._numbers = {}  # sku_key of a row shown -> the numbers of its rows (up to DUPLICATE_ROWS_SHOWN)
        self._mixed = set()  # keys of _numbers written in more than one form

    def add(self, row, sku, key, *, sku_field, known):
        """Count ``row`` (its ``row_sku`` and that SKU's ``sku_key``) if the import will reject it."""
        if row.problem:
            before, after, alone = [{"field": row.problem_field, "reason": row.problem}], [], True
        else:
            unknown, unseen = _unknown_fields(row, known), sku_problem(sku)
            before = ([unknown] if unknown else []) + ([{"field": "sku", "reason": unseen}] if unseen else [])
            # The serializer's words on the same characters are left out, as the import leaves them out.
            after, alone = ([] if unseen else _sku_field_problems(row, sku_field)), False
        first = None if key is None else self._first.get(key)
        if first:  # the SKU's second row: its first row, good until now, is rejected too
            self.count += 1
            self._first[key] = 0
            self._offer(first, _Shown(self._first_forms.get(key, key), key, [], [], False))
        if key in self._numbers:
            numbers = self._numbers[key]
            if len(numbers) < DUPLICATE_ROWS_SHOWN:
                numbers.append(row.number)
            if sku != self._first_forms.get(key, key):
                self._mixed.add(key)
        bad = bool(before or after) or first is not None
        if bad:
            self.count += 1
            self._offer(row.number, _Shown(sku, key, before, after, alone))
        if key is not None and first is None:
            self._first[key] = 0 if bad else row.number
            if sku != key:
                self._first_forms[key] = sku

    def _offer(self, number, shown):
        """Keep row ``number`` if it is among the first ``_limit`` rejected rows found so far."""
        if len(self._shown) >= self._limit and number > max(self._shown):
            return
        self._shown[number] = shown
        if shown.key is not None and shown.key not in self._numbers:
            self._numbers[shown.key] = [number]  # its first row: later ones are added as they are read
        if len(self._shown) > self._limit:
            dropped = self._shown.pop(max(self._shown))
            if all(other.key != dropped.key for other in self._shown.values()):
                self._numbers.pop(dropped.key, None)
                self._mixed.discard(dropped.key)

    @property
    def errors(self):
        """The problems of the first rows rejected, ``[{"row", "field", "reason"}]``, as the import's ``errors``."""
        errors = []
        for number in sorted(self._shown):
            shown = self._shown[number]
            numbers = self._numbers.get(shown.key, [])
            duplicate = [] if shown.alone or len(numbers) < 2 else [{"field": "sku", "reason": _duplicate_reason(
                shown.sku, shown.key, numbers, mixed=shown.key in self._mixed)}]
            errors.extend({"row": number, **problem} for problem in shown.before + duplicate + shown.after)
        return errors


@dataclass(frozen=True)
class PreparedImage:
    """An image of a row, checked and ready to store: the upload's SHA-256 and the copy that is served."""

    sha256: str
    file: ContentFile  # files.public_file: the pixels only, no metadata, nothing appended


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
            named.update(_scan(waiting, sku_field)[0])
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
    merchant = serializer_class.merchant_by_key(job.merchant_key)
    job.state, job.started_at = ImportJob.State.RUNNING, timezone.now()
    job.save(update_fields=["state", "started_at", "updated_at"])
    report = _Report(job)
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
    skus, job.rows_total, mixed = _scan(job, sku_field)
    duplicates = {key: numbers for key, numbers in skus.items() if len(numbers) > 1}
    to_unlist, listed_since = [], 0
    if job.full_sync:
        listed = set(serializer_class.listed_skus(merchant))
        missing, before = unnamed(listed, skus), _listed_at_upload(job)
        to_unlist = missing if before is None else [sku for sku in missing if sku_key(str(sku)) in before]
        listed_since = len(missing) - len(to_unlist)
        _check_full_sync(job, len(to_unlist), listed=len(listed))
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
            problems, valid, names = _check_row(row, columns, known, writer, sku_field, duplicates, mixed)
            ahead.append((row, problems, valid, threads.submit(_prepare_images, names, archive) if valid else None))
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
        if not accepted and job.confirm_unlist != len(to_unlist):
            raise _Refused(_refusal(len(to_unlist), None, because="no row of the file could be imported"))
        job.products_unlisted = serializer_class.unlist(merchant, to_unlist)
        job.unlisted_skus = to_unlist[:int(app_settings.IMPORT_ERRORS_SHOWN)]
    job.state = ImportJob.State.DONE
    job.message = (f"{accepted} rows imported, {chunk.images_queued} images to embed"
                   + (f", {report.rows_rejected} rows skipped" if report.rows_rejected else "")
                   + (f", {job.products_unlisted} products unlisted" if job.full_sync else "")
                   + (f" ({listed_since} listed after the upload was received stay listed)" if listed_since else ""))


def _scan(job, sku_field):
    """The first pass over the manifest: ``({sku_key: [row numbers]}, rows, mixed)`` of every row, valid or not.

    ``mixed``: the keys whose rows write them in more than one form (``café`` composed on one
    row, decomposed on another). Only a SKU whose first row is not in NFC costs a second string.
    """
    skus, first_forms, mixed = defaultdict(list), {}, set()
    rows_total = 0
    with job.manifest.open("rb") as handle:
        columns, rows = read_manifest(handle, job.manifest.name, max_rows=int(app_settings.IMPORT_MAX_ROWS))
        for row in rows:
            rows_total += 1
            sku = row_sku(row, columns, sku_field)
            if sku is None:
                continue
            key = sku_key(sku)
            numbers = skus[key]
            if not numbers and sku != key:
                first_forms[key] = sku
            elif numbers and sku != first_forms.get(key, key):
                mixed.add(key)
            numbers.append(row.number)
    return skus, rows_total, mixed


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


def _check_row(row, columns, known, writer, sku_field, duplicates, mixed):
    """Return ``(problems, valid, image names)`` of one row's cells; ``valid`` is None when they are invalid.

    ``valid`` is what ``writer.save`` takes; the images are checked apart (``_prepare_images``).
    """
    if row.problem:
        return [{"field": row.problem_field, "reason": row.problem}], None, []
    unknown = _unknown_fields(row, known)
    problems = [unknown] if unknown else []
    sku = row_sku(row, columns, sku_field)
    unseen = sku_problem(sku)
    if unseen:  # the row's error, not the file's: the other rows are imported, a full sync spares this SKU
        problems.append({"field": "sku", "reason": unseen})
    key = sku_key(sku)
    if key in duplicates:
        problems.append({"field": "sku", "reason": _duplicate_reason(sku, key, duplicates[key], mixed=key in mixed)})
    valid, data, errors = writer.validate({key: value for key, value in row.values.items() if key in known})
    if errors:
        for field, messages in errors.items():
            if field == "sku" and unseen:
                continue  # the serializer's words on the same characters ("Null characters are not allowed.")
            problems.append({"field": field, "reason": _joined(messages)})
        return problems, None, []
    return problems, valid, data.get("images") or []


def _prepare_images(names, archive):
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
            data = fetch_image(name) if is_url(name) else _read(archive, name)
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


def _read(archive, name):
    if archive is None:
        raise KeyError(name)
    return archive.read(name)


def _flat(messages):
    if isinstance(messages, dict):
        for value in messages.values():
            yield from _flat(value)
    elif isinstance(messages, list):
        for value in messages:
            yield from _flat(value)
    else:
        yield messages


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


class _Report:
    """A job's errors: the first few in the job, all of them in the rejected-rows file."""

    def __init__(self, job):
        self.job = job
        self.shown, self.errors_total, self.rows_rejected = [], 0, 0
        self.file = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024, mode="w+b")
        # A JSON Lines row may hold a lone surrogate ("\ud800" is valid JSON, and the row is rejected for it):
        # UTF-8 cannot encode one, so it is written back as that same escape, which reads as it was sent.
        self.text = io.TextIOWrapper(self.file, encoding="utf-8", errors="backslashreplace", newline="")
        self.columns, self.kind, self.writer, self.kept = None, None, None, None
        self.stored = None  # the name of the rejected-rows file written

    def start(self, columns, name):
        # The cells kept: all but a previous error column's, wherever the merchant put it.
        self.kept = [i for i, c in enumerate(columns) if c != ERROR_COLUMN] if columns is not None else None
        self.columns = [columns[i] for i in self.kept] if columns is not None else None
        self.kind = "csv" if columns is not None else "jsonl"
        if self.kind == "csv":
            self.writer = csv.writer(self.text)
            self.writer.writerow([*self.columns, ERROR_COLUMN])

    def reject(self, row, problems):
        self.rows_rejected += 1
        self.errors_total += len(problems)
        limit = int(app_settings.IMPORT_ERRORS_SHOWN)
        for problem in problems:
            if len(self.shown) < limit:
                self.shown.append({"row": row.number, **problem})
        error = "; ".join(f"{p['field']}: {p['reason']}" if p["field"] else p["reason"] for p in problems)
        if self.kind == "csv":
            cells = list(row.raw) if isinstance(row.raw, list) else []
            self.writer.writerow([spreadsheet_cell(cell) for cell in
                                  (*(cells[i] if i < len(cells) else "" for i in self.kept), error)])
        else:
            self.text.write(json.dumps(_jsonl_rejected(row.raw, error), ensure_ascii=False) + "\n")

    def store(self, job):
        """Put the first errors, their count and the rejected-rows file on ``job`` (not saved)."""
        job.errors, job.errors_total = self.shown, self.errors_total
        if self.rows_rejected:
            self.text.flush()
            self.file.seek(0)
            extension = ".csv" if self.kind == "csv" else ".jsonl"
            job.rejected_rows.save(f"rejected-rows{extension}", File(self.file), save=False)
            self.stored = job.rejected_rows.name

    def discard(self, job):
        """Delete the rejected-rows file ``store`` wrote for a run that did not end (no saved job refers to it)."""
        if self.stored:
            try:
                job.rejected_rows.storage.delete(self.stored)
            except Exception as exc:  # any storage's error: the orphan sweep deletes it later
                logger.warning("could not delete the rejected rows file %s: %s", self.stored, exc)
            job.rejected_rows, self.stored = "", None

    def close(self):
        self.text.detach()
        self.file.close()


def _jsonl_rejected(line, error):
    try:
        value = load_json_line(line)  # a key given twice: the line as sent, not one of its values
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        value.pop(ERROR_COLUMN, None)
        return {**value, ERROR_COLUMN: error}
    return {"line": line.rstrip("\r\n"), ERROR_COLUMN: error}

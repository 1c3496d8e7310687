"""Import a catalog from files on the server, as a merchant's upload would."""

from contextlib import contextmanager, nullcontext
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from p2w_search.api.uploads import UploadSerializer
from p2w_search.locks import advisory_lock_polled
from p2w_search.management.terminal import shown
from p2w_search.models import ImportJob
from p2w_search.uploads.archive import ArchiveRejected, check_archive
from p2w_search.uploads.importer import (
    check_manifest,
    create_job,
    import_serializer,
    known_columns,
    merchant_lock_key,
    run_import,
)
from p2w_search.uploads.limits import max_waiting, waiting_count
from p2w_search.uploads.manifest import ManifestError

# Seconds between two tries of a merchant's import lock held by another import.
LOCK_POLL_SECONDS = 1
# The API's names of the options the command checks with UploadSerializer, and the command's.
OPTIONS = {"policy": "--policy", "full_sync": "--full-sync", "confirm_unlist": "--confirm-unlist"}


class Command(BaseCommand):
    help = "Import a manifest (CSV or JSON Lines) and a zip of images for a merchant; prints row errors."

    def add_arguments(self, parser):
        parser.add_argument("manifest")
        parser.add_argument("--archive", help="Zip of the images the manifest names.")
        parser.add_argument("--merchant", required=True, help="The merchant's key (its primary key in the demo).")
        parser.add_argument("--policy", choices=ImportJob.Policy.values, default=ImportJob.Policy.SKIP)
        parser.add_argument("--full-sync", action="store_true", help="Unlist the merchant's products not named.")
        parser.add_argument("--confirm-unlist", type=int, help="With --full-sync: the number of products it may "
                                                               "unlist when that is a large share of the catalog.")

    def handle(self, *, manifest, archive, merchant, policy, full_sync, confirm_unlist, **options):
        values = _checked_options(policy=policy, full_sync=full_sync, confirm_unlist=confirm_unlist)
        try:
            # The key as the API and the pages write it: "03" or " 3" names merchant 3 too, but under another import
            # lock, and its import would run beside that merchant's other one.
            merchant = str(import_serializer().merchant_by_key(merchant).pk)
        except Exception:
            raise CommandError(f"no merchant {merchant!r}") from None
        with _opened(manifest, "manifest") as handle:
            try:
                check_manifest(File(handle, name=Path(manifest).name), columns_known=known_columns())
            except ManifestError as exc:
                raise CommandError(f"manifest refused: {exc}") from None
        if archive:
            with _opened(archive, "--archive") as handle:
                try:
                    check_archive(handle)
                except ArchiveRejected as exc:
                    raise CommandError(f"archive refused: {exc}") from None
        self._note_waiting(merchant)
        job = _create_job(merchant, values, manifest, archive)
        job = self._run(job)
        for error in job.errors:
            self.stderr.write(shown(f"row {error['row']}: {error['field'] or '-'}: {error['reason']}"))
        if job.errors_total > len(job.errors):
            self.stderr.write(f"... {job.errors_total - len(job.errors)} more errors in the rejected rows file "
                              f"(import {job.pk})")
        self.stdout.write(shown(f"import {job.pk}: {job.state}; {job.message}"))
        if job.state == ImportJob.State.REJECTED:
            raise CommandError("upload rejected; nothing was imported")

    def _note_waiting(self, merchant):
        """Say so when the merchant has no place left for an upload: this import runs all the same.

        IMPORT_MAX_WAITING keeps what comes over the network (a runaway script, a stolen token)
        from filling the upload storage and the bulk queue. This command is run by someone with
        a shell on the server, imports its one job here rather than queueing it, and may be how
        staff put a catalog right while the merchant's uploads wait; its job still takes one of
        the merchant's places while it waits and runs.
        """
        limit = max_waiting()
        if limit is not None and (waiting := waiting_count(merchant)) >= limit:
            self.stderr.write(f"merchant {merchant!r} has {waiting} uploads waiting, and its uploads are refused at "
                              f"{limit} (IMPORT_MAX_WAITING); this import from the server runs all the same")

    def _run(self, job):
        """Run ``job`` under its merchant's import lock, as a worker would, waiting while another import holds it.

        The job is also in the database, where the sweep may hand it to a worker while this
        waits: then the worker ran it, and its result is reported.
        """
        def waiting():
            self.stderr.write(f"merchant {job.merchant_key!r} has another import running; waiting for it to end")

        with advisory_lock_polled(*merchant_lock_key(job.merchant_key), poll=LOCK_POLL_SECONDS, waiting=waiting):
            job.refresh_from_db()
            if job.state in ImportJob.ENDED:
                return job
            with tqdm(desc="checking rows", unit="row") as bar:
                def progress(done, total):
                    bar.total, bar.n = total, done
                    bar.refresh()
                return run_import(job, progress=progress)


def _checked_options(**options):
    """The options as the API's UploadSerializer takes them (its rules: ranges, what needs a full sync);
    CommandError naming the option and the reason."""
    data = {name: value for name, value in options.items() if value is not None}
    serializer = UploadSerializer(data=data, partial=True)  # partial: the files are checked apart, from paths
    if not serializer.is_valid():
        name, messages = next(iter(serializer.errors.items()))
        message = messages[0] if isinstance(messages, list) else messages
        raise CommandError(f"{OPTIONS.get(name, name)}: {message}")
    return serializer.validated_data


@contextmanager
def _opened(path, option):
    """``path`` opened for reading; CommandError naming ``option`` when it cannot be (missing, a folder, ...)."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise CommandError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _create_job(merchant, values, manifest, archive):
    """The job of these files, saved (not sent to a worker: the command imports it here)."""
    with _opened(manifest, "manifest") as handle, (_opened(archive, "--archive") if archive else nullcontext()) as zip_:
        files = {"manifest": File(handle, name=Path(manifest).name), "archive": File(zip_) if zip_ else None}
        return create_job(owner=None, merchant_key=merchant, values={**values, **files}, send=False, limited=False)


"""Import a catalog from files on the server, as a merchant's upload would."""

from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from p2w_search.models import ImportJob
from p2w_search.uploads.archive import ArchiveRejected, check_archive
from p2w_search.uploads.importer import check_manifest, import_serializer, known_columns, run_import
from p2w_search.uploads.manifest import ManifestError


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
        try:
            import_serializer().merchant_by_key(merchant)
        except Exception:
            raise CommandError(f"no merchant {merchant!r}") from None
        with open(manifest, "rb") as handle:
            try:
                check_manifest(File(handle, name=Path(manifest).name), columns_known=known_columns())
            except ManifestError as exc:
                raise CommandError(f"manifest refused: {exc}") from None
        if archive:
            with open(archive, "rb") as handle:
                try:
                    check_archive(handle)
                except ArchiveRejected as exc:
                    raise CommandError(f"archive refused: {exc}") from None
        job = ImportJob(merchant_key=merchant, policy=policy, full_sync=full_sync, confirm_unlist=confirm_unlist)
        with open(manifest, "rb") as handle:
            job.manifest.save(Path(manifest).name, File(handle), save=False)
        if archive:
            with open(archive, "rb") as handle:
                job.archive.save("images.zip", File(handle), save=False)
        job.save()
        with tqdm(desc="checking rows", unit="row") as bar:
            def progress(done, total):
                bar.total, bar.n = total, done
                bar.refresh()
            job = run_import(job, progress=progress)
        for error in job.errors:
            self.stderr.write(f"row {error['row']}: {error['field'] or '-'}: {error['reason']}")
        if job.errors_total > len(job.errors):
            self.stderr.write(f"... {job.errors_total - len(job.errors)} more errors in the rejected rows file "
                              f"(import {job.pk})")
        self.stdout.write(f"import {job.pk}: {job.state}; {job.message}")
        if job.state == ImportJob.State.REJECTED:
            raise CommandError("upload rejected; nothing was imported")

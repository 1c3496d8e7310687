"""Import a catalog from files on the server, as a merchant's upload would."""

from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from p2w_search import imports
from p2w_search.models import ImportJob


class Command(BaseCommand):
    help = "Import a manifest (CSV or JSON Lines) and a zip of images for a merchant; prints row errors."

    def add_arguments(self, parser):
        parser.add_argument("manifest")
        parser.add_argument("--archive", help="Zip of the images the manifest names.")
        parser.add_argument("--merchant", required=True, help="The merchant's key (its primary key in the demo).")
        parser.add_argument("--policy", choices=ImportJob.Policy.values, default=ImportJob.Policy.SKIP)
        parser.add_argument("--full-sync", action="store_true", help="Unlist the merchant's products not named.")

    def handle(self, *, manifest, archive, merchant, policy, full_sync, **options):
        try:
            imports.import_serializer().merchant_by_key(merchant)
        except Exception:
            raise CommandError(f"no merchant {merchant!r}") from None
        if archive:
            with open(archive, "rb") as handle:
                try:
                    imports.check_archive(handle)
                except imports.ArchiveRejected as exc:
                    raise CommandError(f"archive refused: {exc}") from None
        job = ImportJob(merchant_key=merchant, policy=policy, full_sync=full_sync)
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
            job = imports.run_import(job, progress=progress)
        for error in job.errors:
            self.stderr.write(f"row {error['row']}: {error['field'] or '-'}: {error['reason']}")
        self.stdout.write(f"import {job.pk}: {job.state}; {job.message}")
        if job.state == ImportJob.State.REJECTED:
            raise CommandError("upload rejected; nothing was imported")

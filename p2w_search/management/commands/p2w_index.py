"""Manage the index from the command line: status, embed, wait, sweep, switch."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from p2w_search import indexing
from p2w_search.embedders import DEFAULT_ALIAS
from p2w_search.management.models import chosen_model
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage


class Command(BaseCommand):
    help = "Manage the image index: status | embed | wait | sweep | switch."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="Counts of images by model and state.")
        embed = sub.add_parser("embed", help="Register the model of an embedder alias and queue what it lacks.")
        embed.add_argument("--alias", default=DEFAULT_ALIAS)
        wait = sub.add_parser("wait", help="Show progress until no image is pending under a model.")
        wait.add_argument("--model", type=int, help="Model id (default: the serving model).")
        wait.add_argument("--timeout", type=float, default=None, help="Give up after this many seconds.")
        sub.add_parser("sweep", help="Queue again the images pending for too long.")
        switch = sub.add_parser("switch", help="Make a model serve searches once it is complete.")
        switch.add_argument("model", type=int, help="Model id.")
        switch.add_argument("--force", action="store_true", help="Switch even if images are still pending.")

    def handle(self, *, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_status(self, **options):
        images = ProductImage.objects.count()
        self.stdout.write(f"{images} product images")
        for model in EmbeddingModel.objects.order_by("pk"):
            counts = dict(model.embeddings.values_list("state").annotate(n=Count("id")))
            summary = ", ".join(f"{counts.get(state, 0)} {state}" for state in ImageEmbedding.State.values)
            self.stdout.write(f"[{model.pk}] {model.key} ({model.dimensions}d, {model.state}): {summary}")

    def do_embed(self, *, alias, **options):
        model = indexing.register_model(alias)
        queued = indexing.queue_missing(model)
        self.stdout.write(f"{model.key} ({model.state}): queued {queued} images")

    def do_wait(self, *, model, timeout, **options):
        from tqdm import tqdm

        target = chosen_model(model)
        started = time.monotonic()
        with tqdm(desc=f"embedding with {target.architecture}", unit="img") as bar:
            while True:
                pending = target.embeddings.filter(state=ImageEmbedding.State.PENDING).count()
                done = target.embeddings.exclude(state=ImageEmbedding.State.PENDING).count()
                missing = ProductImage.objects.exclude(embeddings__model=target).count()
                bar.total, bar.n = done + pending + missing, done
                bar.refresh()
                if not pending and not missing:
                    break
                if timeout is not None and time.monotonic() - started > timeout:
                    raise CommandError(f"still {pending + missing} images to embed after {timeout:g} s")
                time.sleep(0.5)
        failed = target.embeddings.filter(state=ImageEmbedding.State.FAILED).count()
        self.stdout.write(f"{done - failed} ready, {failed} failed")

    def do_sweep(self, **options):
        self.stdout.write(f"queued {indexing.sweep_pending()} images again")

    def do_switch(self, *, model, force, **options):
        try:
            target = indexing.switch_serving(chosen_model(model), force=force)
        except indexing.IncompleteModel as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{target.key} now serves searches")


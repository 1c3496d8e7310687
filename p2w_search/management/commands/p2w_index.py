"""Manage the index from the command line: status, embed, wait, sweep, switch."""

import time

from django.core.management.base import BaseCommand, CommandError

from p2w_search import indexing
from p2w_search.embedders import DEFAULT_ALIAS
from p2w_search.management.models import chosen_model
from p2w_search.models import EmbeddingModel, ProductImage


class Command(BaseCommand):
    help = "Manage the image index: status | embed | wait | sweep | switch."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="Counts of images by model and state.")
        embed = sub.add_parser("embed", help="Register the model of an embedder alias and queue what it lacks.")
        embed.add_argument("--alias", default=DEFAULT_ALIAS)
        wait = sub.add_parser("wait", help="Show progress until no image is pending under a model.")
        wait.add_argument("--model", type=int, help="Model id (default: the serving model).")
        wait.add_argument("--timeout", type=float, default=6 * 3600, help="Give up after this many seconds (6 h).")
        wait.add_argument("--stall", type=float, default=300,
                          help="Give up when no image was embedded for this many seconds (300).")
        sub.add_parser("sweep", help="Queue again the images pending for too long.")
        switch = sub.add_parser("switch", help="Make a model serve searches once it is complete.")
        switch.add_argument("model", type=int, help="Model id.")
        switch.add_argument("--force", action="store_true", help="Switch even if images are still pending.")

    def handle(self, *, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_status(self, **options):
        images = ProductImage.objects.filter(in_index=True).count()
        removed = ProductImage.objects.filter(in_index=False).count()
        self.stdout.write(f"{images} product images in the index" + (f" ({removed} removed by an admin)" if removed
                                                                      else ""))
        for model in EmbeddingModel.objects.order_by("pk"):
            counts = indexing.model_progress(model)
            summary = ", ".join(f"{counts[state]} {state}" for state in ("ready", "pending", "failed", "missing"))
            self.stdout.write(f"[{model.pk}] {model.key} ({model.dimensions}d, {model.state}): {summary}")

    def do_embed(self, *, alias, **options):
        model = indexing.register_model(alias)
        queued = indexing.queue_missing(model)
        self.stdout.write(f"{model.key} ({model.state}): queued {queued} images")

    def do_wait(self, *, model, timeout, stall, **options):
        from tqdm import tqdm

        target = chosen_model(model)
        started = last_change = time.monotonic()
        last_done = None
        with tqdm(desc=f"embedding with {target.architecture}", unit="img") as bar:
            while True:
                counts = indexing.model_progress(target)
                done = counts["ready"] + counts["failed"]
                bar.total, bar.n = counts["total"], done
                bar.refresh()
                if not counts["pending"] and not counts["missing"]:
                    break
                now = time.monotonic()
                if done != last_done:
                    last_done, last_change = done, now
                left = counts["pending"] + counts["missing"]
                if now - started > timeout:
                    raise CommandError(f"still {left} images to embed after {timeout:g} s")
                if now - last_change > stall:
                    raise CommandError(f"no image was embedded for {stall:g} s and {left} are left; is a worker "
                                       "running on the bulk queue? (manage.py p2w_index status)")
                time.sleep(0.5)
        self.stdout.write(f"{counts['ready']} ready, {counts['failed']} failed")

    def do_sweep(self, **options):
        self.stdout.write(f"queued {indexing.sweep_pending()} images again")

    def do_switch(self, *, model, force, **options):
        try:
            target = indexing.switch_serving(chosen_model(model), force=force)
        except indexing.IncompleteModel as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{target.key} now serves searches")


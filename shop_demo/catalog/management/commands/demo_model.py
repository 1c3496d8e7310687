"""Write the demo's CLIP checkpoint: the configured small architecture with seeded random weights.

A stand-in until the shipped trained model exists; it is loaded through the same
open_clip checkpoint path as real weights.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from shop_demo.clip import write_random_checkpoint


class Command(BaseCommand):
    help = "Create the demo CLIP checkpoint (seeded random weights) if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--force", action="store_true", help="Overwrite an existing checkpoint.")

    def handle(self, *, seed, force, **options):
        config = settings.P2W_SEARCH["EMBEDDERS"]["default"]
        out = Path(config["PRETRAINED"])
        if out.exists() and not force:
            self.stdout.write(f"demo model: {out} exists")
            return
        write_random_checkpoint(model=config["MODEL"], config=config["MODEL_CONFIG"], out=out, seed=seed)
        self.stdout.write(self.style.SUCCESS(f"demo model: wrote {out} ({config['MODEL']}, seed {seed})"))

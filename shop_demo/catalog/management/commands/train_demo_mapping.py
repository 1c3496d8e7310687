"""Train the demo's Pic2Word mapping on rendered catalog images (images only, held-out combinations left out)."""

import time

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand
from tqdm import tqdm

from p2w_search.embedders.openclip import OpenCLIPEmbedder
from p2w_search.training import fit_mapping
from shop_demo.catalog import generator


class Command(BaseCommand):
    help = "Train the Pic2Word mapping of the demo CLIP on unlabeled demo images; writes MAPPING of 'default'."

    def add_arguments(self, parser):
        config = settings.P2W_SEARCH["EMBEDDERS"]["default"]
        parser.add_argument("--products", type=int, default=4000, help="Synthetic products to draw images of.")
        parser.add_argument("--variants", type=int, default=2, help="Photos per product (other nuisance).")
        parser.add_argument("--steps", type=int, default=2400, help="The shipped mapping: 2400.")
        parser.add_argument("--batch-size", type=int, default=128)
        parser.add_argument("--lr", type=float, default=1e-4)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", default=config.get("MAPPING"))
        parser.add_argument("--resume", action="store_true")

    def handle(self, *, products, variants, steps, batch_size, lr, seed, out, resume, **options):
        config = settings.P2W_SEARCH["EMBEDDERS"]["default"]
        embedder = OpenCLIPEmbedder("default", {**config, "MAPPING": None})
        # A catalog seed the demo shop does not use, so the mapping never sees the evaluation's photos.
        catalog = [p for p in generator.generate_products(products, seed=seed + 1000)
                   if not generator.is_held_out(p.attributes)]
        started = time.monotonic()
        features = []
        for start in tqdm(range(0, len(catalog), 256), desc="image features", unit="x256"):
            chunk = catalog[start:start + 256]
            images = [generator.render(p, seed=seed + 1000, variant=v) for p in chunk for v in range(variants)]
            features.append(embedder.embed_images(images, normalize=False))
        features = np.concatenate(features)
        self.stdout.write(f"{len(features)} unlabeled images ({len(catalog)} products, held-out combinations "
                          f"left out) in {time.monotonic() - started:.0f} s")
        with tqdm(total=steps, desc="pic2word mapping", unit="step") as bar:
            def progress(step, loss):
                bar.n = step + 1
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                bar.refresh()
            result = fit_mapping(embedder, features, out=out, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                 resume=resume, progress=progress)
        losses = result["losses"]
        self.stdout.write(self.style.SUCCESS(
            f"wrote {out}: {steps} steps in {time.monotonic() - started:.0f} s, "
            f"loss {np.mean(losses[:50]):.3f} -> {np.mean(losses[-50:]):.3f}" if losses else f"{out} is complete"))

"""Train the demo's Pic2Word mapping on rendered catalog images (images only, held-out combinations left out)."""

import time

import numpy as np
import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF
from tqdm import tqdm

from p2w_search.embedders.openclip import OpenCLIPEmbedder
from p2w_search.training import (
    ResumeError,
    add_training_options,
    check_training_options,
    describe_settings,
    fit_mapping,
    settings_from_options,
)
from shop_demo.catalog import generator

# The authors' training crop (RandomResizedCrop, scale 0.9 to 1, torchvision's aspect ratios).
CROP_SCALE = (0.9, 1.0)


class Command(BaseCommand):
    help = "Train the Pic2Word mapping of the demo CLIP on unlabeled demo images; writes MAPPING of 'default'."

    def add_arguments(self, parser):
        config = settings.P2W_SEARCH["EMBEDDERS"]["default"]
        parser.add_argument("--products", type=int, default=4000, help="Synthetic products to draw images of.")
        parser.add_argument("--variants", type=int, default=2, help="Photos per product (other nuisance).")
        parser.add_argument("--crops", type=int, default=0,
                            help="Also embed this many random crops of each photo (scale 0.9-1, as the authors "
                                 "augment) and train on them instead of the photos; 0: the photos as they are.")
        parser.add_argument("--steps", type=int, default=2400, help="The shipped mapping: 2400.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", default=config.get("MAPPING"))
        parser.add_argument("--resume", action="store_true")
        add_training_options(parser)  # --preset, --batch-size (default 128 here), --lr, --betas, ...

    def handle(self, *, products, variants, crops, steps, seed, out, resume, **options):
        training = settings_from_options(options, batch_size=128)
        for option, value in (("--products", products), ("--variants", variants)):
            if value < 1:
                raise CommandError(f"{option}: must be at least 1, not {value}")
        if crops < 0:
            raise CommandError(f"--crops: must be at least 0, not {crops}")
        if not out:
            raise CommandError("--out: give the file to write (P2W_SEARCH['EMBEDDERS']['default'] has no MAPPING)")
        check_training_options(steps=steps, settings=training, out=out, resume=resume)
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
            if crops:
                images = _crops(images, crops, seed=seed * 1_000_003 + start)
            features.append(embedder.embed_images(images, normalize=False))
        features = np.concatenate(features)
        self.stdout.write(f"{len(features)} unlabeled images ({len(catalog)} products x {variants} photos"
                          f"{f' x {crops} crops' if crops else ''}, held-out combinations left out) "
                          f"in {time.monotonic() - started:.0f} s")
        self.stdout.write(describe_settings(training, steps=steps))
        with tqdm(total=steps, desc="pic2word mapping", unit="step") as bar:
            def progress(step, loss):
                bar.n = step + 1
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                bar.refresh()
            try:
                result = fit_mapping(embedder, features, out=out, steps=steps, seed=seed, resume=resume,
                                     progress=progress, **training)
            except ResumeError as error:
                raise CommandError(str(error)) from error
        losses = result["losses"]
        self.stdout.write(self.style.SUCCESS(
            f"wrote {out}: {steps} steps in {time.monotonic() - started:.0f} s, "
            f"loss {np.mean(losses[:50]):.3f} -> {np.mean(losses[-50:]):.3f}" if losses else f"{out} is complete"))


def _crops(images, crops, *, seed):
    """``crops`` random crops of each image, resized back to its size; deterministic in ``seed``."""
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # RandomResizedCrop.get_params draws from torch's global RNG
        for image in images:
            for _ in range(crops):
                top, left, height, width = RandomResizedCrop.get_params(image, scale=CROP_SCALE,
                                                                        ratio=(3 / 4, 4 / 3))
                out.append(TF.resized_crop(image, top, left, height, width, [image.height, image.width]))
    return out

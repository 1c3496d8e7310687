"""Train the Pic2Word mapping on the shop's own catalog images (no captions, no triplets)."""

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from p2w_search.embedders import DEFAULT_ALIAS
from p2w_search.indexing import embedder_for
from p2w_search.management.model_choice import chosen_model
from p2w_search.models import ImageEmbedding
from p2w_search.pic2word import MappingMismatch
from p2w_search.training import (
    ResumeError,
    add_training_options,
    describe_settings,
    fit_mapping,
    settings_from_options,
)


class Command(BaseCommand):
    help = ("Train a Pic2Word mapping for a model's CLIP on the catalog's embedded images; "
            "point P2W_SEARCH['EMBEDDERS'][alias]['MAPPING'] at the file it writes.")

    def add_arguments(self, parser):
        parser.add_argument("--model", type=int, help="EmbeddingModel id (default: the serving model).")
        parser.add_argument("--out", required=True, help="Checkpoint to write.")
        parser.add_argument("--steps", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--resume", action="store_true",
                            help="Continue the unfinished run in --out (with the settings it was started with).")
        add_training_options(parser)  # --preset, --batch-size (default 64 here), --lr, --betas, ...

    def handle(self, *, model, out, steps, seed, resume, **options):
        settings = settings_from_options(options, batch_size=64)
        check_training_options(steps=steps, settings=settings, out=out, resume=resume)
        target = chosen_model(model)
        # The image tower is frozen, so the stored embeddings are the features: vector * norm.
        # In a fixed order: batches are drawn by position, so a resumed run must see the same list.
        rows = target.embeddings.filter(state=ImageEmbedding.State.READY).order_by("pk").values_list("vector", "norm")
        features = np.array([np.asarray(vector, dtype=np.float32) * norm for vector, norm in rows.iterator()])
        if len(features) < 2:
            raise CommandError(f"{target.key} has {len(features)} embedded images; train on at least a batch")
        embedder = embedder_for(target)
        self.stdout.write(f"training a mapping for {target.key} on {len(features)} images")
        self.stdout.write(describe_settings(settings, steps=steps))
        with tqdm(total=steps, desc="pic2word mapping", unit="step") as bar:
            def progress(step, loss):
                bar.n = step + 1
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                bar.refresh()
            try:
                result = fit_mapping(embedder, features, out=out, steps=steps, seed=seed, resume=resume,
                                     progress=progress, **settings)
            except ResumeError as error:
                raise CommandError(str(error)) from error
            except MappingMismatch as error:  # only a resumed checkpoint is loaded
                raise CommandError(f"--resume: {out}: {error}") from error
        alias = target.alias or DEFAULT_ALIAS
        self.stdout.write(self.style.SUCCESS(
            f"wrote {out} (final loss {result['losses'][-1]:.3f}); set P2W_SEARCH['EMBEDDERS'][{alias!r}]"
            f"['MAPPING'] to it" if result["losses"] else f"{out} was already complete"))


def check_training_options(*, steps, settings, out, resume):
    """CommandError naming the option and the reason for what would fail only once training runs (or after it).

    ``settings``: ``settings_from_options``'s. The bounds are torch's AdamW's (lr above 0, eps and weight decay
    at least 0, betas in [0, 1)), and ``out`` must be a file this process can write: its folder is created
    here, as training would, and written to once.
    """
    if steps < 1:
        raise CommandError(f"--steps: must be at least 1, not {steps}")
    if settings["batch_size"] < 1:
        raise CommandError(f"--batch-size: must be at least 1, not {settings['batch_size']}")
    if not (math.isfinite(settings["lr"]) and settings["lr"] > 0):
        raise CommandError(f"--lr: must be a finite number above 0, not {settings['lr']:g}")
    for option, key in (("--eps", "eps"), ("--weight-decay", "weight_decay")):
        if not (math.isfinite(settings[key]) and settings[key] >= 0):
            raise CommandError(f"{option}: must be a finite number of at least 0, not {settings[key]:g}")
    if not all(0 <= beta < 1 for beta in settings["betas"]):
        raise CommandError("--betas: each must be at least 0 and below 1, not "
                           + " ".join(f"{beta:g}" for beta in settings["betas"]))
    if settings["warmup"] is not None and settings["warmup"] < 0:
        raise CommandError(f"--warmup: must be at least 0, not {settings['warmup']}")
    _check_out(Path(out), resume=resume)


def _check_out(out, *, resume):
    if out.is_dir():
        raise CommandError(f"--out: {out} is a folder; give the path of the file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok, yet it exists: as a file
        raise CommandError(f"--out: cannot write {out}: {out.parent} is a file, not a folder") from None
    except OSError as exc:
        raise CommandError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    try:
        handle, temp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")  # as saving does
        os.close(handle)
        os.unlink(temp)
    except OSError as exc:
        raise CommandError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    if not (resume and out.exists()):
        return
    try:
        saved = torch.load(out, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many kinds for a file that is not its own
        raise CommandError(f"--resume: {out} is not a mapping checkpoint (torch cannot load it)") from None
    if not isinstance(saved, dict) or "state_dict_img2text" not in saved:
        raise CommandError(f"--resume: {out} is not a mapping checkpoint (it holds no mapping weights)")
    unfinished = saved.get("resume")  # absent: a finished mapping, which fit_mapping refuses to resume
    if unfinished is not None and not (isinstance(unfinished, dict)
                                       and {"step", "optimizer_state"} <= unfinished.keys()):
        raise CommandError(f"--resume: {out} is not a mapping checkpoint (its resume state is incomplete)")

"""Train a Pic2Word mapping for an embedder's CLIP on unlabeled image features, with checkpoints.

The paper's recipe (section 3.2): CLIP frozen, the mapping learns to turn an image into a
pseudo word whose sentence "a photo of *" lands on the image's own embedding. No captions,
no triplets: a shop trains it on its own catalog.

The optimizer settings come from a preset (``PRESETS``) with single values overridden; a
checkpoint records them, and a resume with other settings is refused.
"""

import math
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from django.core.management.base import CommandError

from p2w_search.pic2word import DECAY_CHOICES, load_mapping, save_mapping, train_mapping

__all__ = ["PRESETS", "PRESET_HELP", "ResumeError", "training_settings", "add_training_options",
           "settings_from_options", "check_training_options", "describe_settings", "fit_mapping"]

# AdamW hyperparameters and warm-up. ``warmup=None`` is steps // 20; ``batch_size=None`` leaves the
# caller's default. "default" is what p2w_search trained with before the presets existed and what
# measured better on the demo's validation catalogs (shop_demo/clip/weights/TRAINING.md).
PRESETS = {
    "default": {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1, "decay": "all",
                "warmup": None, "batch_size": None},
    # The authors' training command (their README: --lr 1e-4 --wd 0.1 --warmup 10000 --batch-size 128,
    # ViT-L/14) and their params.py defaults for ViT models (beta2 0.98, eps 1e-6); their main.py
    # excludes biases and norm gains from weight decay. Batch 128 is per GPU in their runs.
    "paper": {"lr": 1e-4, "betas": (0.9, 0.98), "eps": 1e-6, "weight_decay": 0.1, "decay": "weights",
              "warmup": 10_000, "batch_size": 128},
}

PRESET_HELP = ("Optimizer settings to start from; the single options below override them. 'default': AdamW "
               "betas 0.9 0.999, eps 1e-8, weight decay 0.1 on every parameter, warm-up steps // 20. 'paper': "
               "the Pic2Word authors' values (google-research/composed_image_retrieval: the training command "
               "of their README and the ViT defaults of src/params.py): betas 0.9 0.98, eps 1e-6, weight decay "
               "0.1 on weights only (not biases), warm-up 10000 steps, batch 128, lr 1e-4. Their batch is per "
               "GPU with features gathered across GPUs, and they train in mixed precision; neither is "
               "reproduced here.")

# What a resume must repeat: these decide the schedule, the batches and the optimizer's state.
_RESUME_KEYS = ("steps", "seed", "batch_size", "lr", "betas", "eps", "weight_decay", "decay", "warmup")


class ResumeError(ValueError):
    """A checkpoint that cannot be resumed: finished, or started with other settings."""


def training_settings(preset="default", **overrides):
    """Return the settings of ``preset`` with every override that is not None applied.

    Keys: ``lr``, ``betas``, ``eps``, ``weight_decay``, ``decay``, ``warmup``, ``batch_size``.
    An unknown preset, key or ``decay`` value is a ``ValueError``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    unknown = overrides.keys() - PRESETS[preset].keys()
    if unknown:
        raise ValueError(f"unknown training settings: {sorted(unknown)}")
    settings = {**PRESETS[preset], **{key: value for key, value in overrides.items() if value is not None}}
    if settings["decay"] not in DECAY_CHOICES:
        raise ValueError(f"decay must be one of {DECAY_CHOICES}, not {settings['decay']!r}")
    settings["betas"] = tuple(float(beta) for beta in settings["betas"])
    return settings


def add_training_options(parser):
    """Add ``--preset`` and the optimizer options to a command's argparse ``parser`` (None: the preset's value)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default", help=PRESET_HELP)
    parser.add_argument("--batch-size", type=int, default=None, help="Images per step (default: the preset's, "
                        "or the command's own default when the preset leaves it open).")
    parser.add_argument("--lr", type=float, default=None, help="Peak learning rate (both presets: 1e-4).")
    parser.add_argument("--betas", type=float, nargs=2, default=None, metavar=("BETA1", "BETA2"),
                        help="AdamW betas.")
    parser.add_argument("--eps", type=float, default=None, help="AdamW eps.")
    parser.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay.")
    parser.add_argument("--decay", choices=DECAY_CHOICES, default=None,
                        help="What weight decay applies to: every parameter, or weight matrices only.")
    parser.add_argument("--warmup", type=int, default=None,
                        help="Linear warm-up steps before the cosine decay (default preset: steps // 20).")


def settings_from_options(options, *, batch_size):
    """``fit_mapping``'s optimizer keyword arguments from parsed options; ``batch_size`` when none is set."""
    settings = training_settings(options["preset"], **{key: options[key] for key in (
        "batch_size", "lr", "betas", "eps", "weight_decay", "decay", "warmup")})
    if settings["batch_size"] is None:
        settings["batch_size"] = batch_size
    return settings


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


def describe_settings(settings, *, steps):
    """One line for a command's output: the optimizer, its schedule and the batch."""
    warmup = max(1, steps // 20) if settings["warmup"] is None else settings["warmup"]
    decayed = "every parameter" if settings["decay"] == "all" else "weights only"
    note = f" (longer than the {steps} steps: the rate never reaches its peak)" if warmup > steps else ""
    return (f"AdamW lr {settings['lr']:g}, betas {settings['betas'][0]:g} {settings['betas'][1]:g}, "
            f"eps {settings['eps']:g}, weight decay {settings['weight_decay']:g} on {decayed}; "
            f"warm-up {warmup} steps{note}, then cosine decay; batch {settings['batch_size']}")


def fit_mapping(embedder, features, *, out, steps, batch_size=64, lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=0.1, decay="all", warmup=None, seed=0, resume=False, checkpoint_every=200,
                progress=None):
    """Train (or resume) a mapping on raw image features [n, dim]; write it to ``out``; return the result.

    The optimizer arguments are ``train_mapping``'s (``warmup=None``: steps // 20). While
    training, ``out`` holds a resumable checkpoint (optimizer state, step and every setting
    of ``_RESUME_KEYS``); resuming it with another value of any of them raises ``ResumeError``
    naming each difference. The finished file keeps the mapping, the CLIP identity it
    belongs to and the settings it was trained with.
    """
    loaded = embedder.load()
    identity = asdict(loaded.identity)
    features = torch.as_tensor(features, dtype=torch.float32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"steps": steps, "seed": seed, "batch_size": batch_size, "lr": lr,
                "betas": [float(beta) for beta in betas], "eps": eps, "weight_decay": weight_decay,
                "decay": decay, "warmup": max(1, steps // 20) if warmup is None else warmup}
    optimizer = {key: settings[key] for key in ("lr", "eps", "weight_decay", "decay", "warmup")}
    optimizer["betas"] = tuple(settings["betas"])
    state = {"mapping": None, "optimizer_state": None, "step": 0, "losses": []}
    if resume and out.exists():
        saved = torch.load(out, map_location="cpu", weights_only=True)
        if "resume" not in saved:
            raise ResumeError(f"{out} is a finished mapping; there is nothing to resume")
        _check_same_settings(out, saved["resume"], settings)
        state.update(mapping=load_mapping(saved, clip_identity=identity).to(loaded.device),
                     optimizer_state=saved["resume"]["optimizer_state"], step=saved["resume"]["step"])
    while state["step"] < steps:
        until = min(steps, state["step"] + checkpoint_every)
        result = train_mapping(
            loaded.model, loaded.tokenizer, features, steps=steps, batch_size=batch_size, seed=seed,
            mapping=state["mapping"], optimizer_state=state["optimizer_state"], start_step=state["step"],
            until=until, progress=progress, **optimizer,
        )
        state.update(mapping=result["mapping"], optimizer_state=result["optimizer_state"], step=result["step"],
                     losses=state["losses"] + result["losses"])
        if state["step"] < steps:
            save_mapping(state["mapping"], out, clip_identity=identity, extra={"resume": {
                "optimizer_state": state["optimizer_state"], "step": state["step"], **settings}})
    save_mapping(state["mapping"], out, clip_identity=identity,
                 extra={"training": {**settings, "images": len(features),
                                     "final_loss": state["losses"][-1] if state["losses"] else None}})
    return state


def _check_same_settings(out, recorded, settings):
    # A checkpoint written before the settings were recorded holds steps and seed only: those are compared.
    differences = [f"{key} {_show(recorded[key])} there, {_show(settings[key])} asked"
                   for key in _RESUME_KEYS if key in recorded and _same(recorded[key]) != _same(settings[key])]
    if differences:
        raise ResumeError(f"{out} was started with other settings ({'; '.join(differences)}); "
                          "resume with the same values, or train into another file")


def _same(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _show(value):
    return " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)

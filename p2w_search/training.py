"""Train a Pic2Word mapping for an embedder's CLIP on unlabeled image features, with checkpoints.

The paper's recipe (section 3.2): CLIP frozen, the mapping learns to turn an image into a
pseudo word whose sentence "a photo of *" lands on the image's own embedding. No captions,
no triplets: a shop trains it on its own catalog.
"""

from dataclasses import asdict
from pathlib import Path

import torch

from p2w_search.pic2word import load_mapping, save_mapping, train_mapping

__all__ = ["fit_mapping"]


def fit_mapping(embedder, features, *, out, steps, batch_size=64, lr=1e-4, seed=0, resume=False,
                checkpoint_every=200, progress=None):
    """Train (or resume) a mapping on raw image features [n, dim]; write it to ``out``; return the result.

    While training, ``out`` holds a resumable checkpoint (optimizer state and step); the
    finished file keeps only the mapping and the CLIP identity it belongs to.
    """
    loaded = embedder.load()
    identity = asdict(loaded.identity)
    features = torch.as_tensor(features, dtype=torch.float32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {"mapping": None, "optimizer_state": None, "step": 0, "losses": []}
    if resume and out.exists():
        saved = torch.load(out, map_location="cpu", weights_only=True)
        if "resume" not in saved:
            raise ValueError(f"{out} is a finished mapping; there is nothing to resume")
        state.update(mapping=load_mapping(saved, clip_identity=identity).to(loaded.device),
                     optimizer_state=saved["resume"]["optimizer_state"], step=saved["resume"]["step"])
        if saved["resume"]["steps"] != steps or saved["resume"]["seed"] != seed:
            raise ValueError(f"{out} was started with steps={saved['resume']['steps']} seed={saved['resume']['seed']};"
                             " resume with the same values")
    while state["step"] < steps:
        until = min(steps, state["step"] + checkpoint_every)
        result = train_mapping(
            loaded.model, loaded.tokenizer, features, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
            mapping=state["mapping"], optimizer_state=state["optimizer_state"], start_step=state["step"],
            until=until, progress=progress,
        )
        state.update(mapping=result["mapping"], optimizer_state=result["optimizer_state"], step=result["step"],
                     losses=state["losses"] + result["losses"])
        if state["step"] < steps:
            save_mapping(state["mapping"], out, clip_identity=identity, extra={"resume": {
                "optimizer_state": state["optimizer_state"], "step": state["step"], "steps": steps, "seed": seed}})
    save_mapping(state["mapping"], out, clip_identity=identity,
                 extra={"training": {"steps": steps, "seed": seed, "images": len(features), "batch_size": batch_size,
                                     "lr": lr, "final_loss": state["losses"][-1] if state["losses"] else None}})
    return state

"""The demo's CLIP architectures (open_clip JSON configs) and a writer of seeded random weights."""

from pathlib import Path

__all__ = ["write_random_checkpoint"]


def write_random_checkpoint(*, model, config, out, seed=0):
    """Save a ``model`` of the open_clip ``config`` with weights drawn from ``seed`` to ``out``.

    The file is an ordinary open_clip checkpoint (``{"state_dict": ...}``), so it loads
    through ``create_model(..., pretrained=out)`` like downloaded weights do.
    """
    import open_clip
    import torch

    from p2w_search.embedders.openclip import register_model_config

    register_model_config(config)
    torch.manual_seed(seed)
    clip = open_clip.create_model(model, pretrained=None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"state_dict": clip.state_dict()}, tmp)
    tmp.replace(out)  # never leave a half-written checkpoint behind
    return out

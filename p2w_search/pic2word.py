"""Pic2Word (Saito et al., CVPR 2023): map an image to a pseudo word, compose it with text.

A frozen CLIP image embedding goes through ``MappingNetwork`` and becomes one token embedding
of CLIP's text tower; that token replaces the ``*`` of a prompt such as ``"a photo of * , in
red"``, and the text tower's output is the composed query (paper, Sec. 3). The mapping is
trained on unlabeled images only, by contrasting each image with "a photo of *" (Sec. 3.1).

Pure torch and open_clip: nothing here imports Django.
"""

import copy
import dataclasses
import math
import os
import re
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MappingNetwork", "MappingMismatch", "load_mapping", "save_mapping",
    "PAPER_TEMPLATE", "STAR", "PromptError", "PromptTooLong", "StrayStar", "encode_text_ids", "has_text_tower",
    "compose_text_features", "compose",
    "pseudo_word_features", "mapping_loss", "cosine_schedule", "optimizer_groups", "train_mapping",
]

PAPER_TEMPLATE = "a photo of * , {text}"
STAR = "*"
FORMAT = "p2w-mapping/1"
_IDENTITY_KEYS = ("architecture", "weights", "checksum", "dimensions")


class PromptError(ValueError):
    """A prompt or template that cannot be composed."""


class StrayStar(PromptError):
    """A prompt with a second ``*`` (its text has one, or the tokenizer reads ``&ast;`` or a fullwidth
    ``＊`` as one), or whose ``*`` runs into the next word (``*,``): it is not one pseudo word."""


class PromptTooLong(PromptError):
    """A prompt has more tokens than the text tower reads; it is refused, never truncated."""

    def __init__(self, *, tokens, limit, prompt):
        super().__init__(f"prompt has {tokens} tokens, more than the model's limit of {limit}: {prompt!r}")
        self.tokens, self.limit = tokens, limit



class MappingMismatch(ValueError):
    """A mapping checkpoint that belongs to another CLIP than the one loaded."""


class MappingNetwork(nn.Module):
    """The paper's IM2TEXT mapping: a CLIP image embedding -> one token embedding.

    Parameter names match the authors' released checkpoints (``layers.N.0.*``, ``fc_out.*``),
    so their ``state_dict_img2text`` loads as is.
    """

    def __init__(self, *, embed_dim, middle_dim=512, output_dim, n_layers=2, dropout=0.1):
        super().__init__()
        self.config = dict(embed_dim=embed_dim, middle_dim=middle_dim, output_dim=output_dim,
                           n_layers=n_layers, dropout=dropout)
        widths = [embed_dim] + [middle_dim] * n_layers
        self.layers = nn.Sequential(*(
            nn.Sequential(nn.Linear(widths[i], widths[i + 1]), nn.Dropout(dropout), nn.ReLU())
            for i in range(n_layers)
        ))
        self.fc_out = nn.Linear(widths[-1], output_dim)

    def forward(self, x):
        """Map unnormalised image features [batch, embed_dim] to tokens [batch, output_dim]."""
        return self.fc_out(self.layers(x))


# --- checkpoints ---------------------------------------------------------------------------------


def _identity_dict(identity):
    if identity is None or isinstance(identity, dict):
        return identity
    return dataclasses.asdict(identity)  # a ModelIdentity from p2w_search.embedders.base


def _describe(identity):
    checksum = (identity.get("checksum") or "")[:12] or "-"
    return (f"CLIP {identity.get('architecture')}/{identity.get('weights')} "
            f"(sha256 {checksum}, {identity.get('dimensions')}-d)")


def load_mapping(path_or_state, *, clip_identity=None, token_width=None, map_location="cpu"):
    """Load a mapping (in eval mode) from our ``save_mapping`` layout or the authors' checkpoint.

    Dimensions come from the weight shapes. Raise ``MappingMismatch`` when the checkpoint belongs
    to another CLIP than ``clip_identity`` / ``token_width``, ``ValueError`` when it is neither layout.
    """
    state = path_or_state
    if isinstance(path_or_state, (str, os.PathLike)):
        state = torch.load(path_or_state, map_location=map_location, weights_only=True)
    where = path_or_state if isinstance(path_or_state, (str, os.PathLike)) else "the given state"
    if not isinstance(state, dict) or "state_dict_img2text" not in state:
        raise ValueError(f"{where} is neither a p2w mapping ({FORMAT}) nor a Pic2Word checkpoint "
                         "with 'state_dict_img2text'.")
    if "format" in state and state["format"] != FORMAT:
        raise ValueError(f"{where} has mapping format {state['format']!r}; this version reads {FORMAT}.")

    weights = state["state_dict_img2text"]
    # The authors trained under DataParallel, which prefixes every key with "module.".
    if weights and all(key.startswith("module.") for key in weights):
        weights = {key.removeprefix("module."): value for key, value in weights.items()}
    n_layers = sum(1 for key in weights if re.fullmatch(r"layers\.\d+\.0\.weight", key))
    if n_layers == 0 or "fc_out.weight" not in weights:
        raise ValueError(f"{where}: 'state_dict_img2text' holds no mapping weights (layers.N.0.*, fc_out.*).")
    middle_dim, embed_dim = weights["layers.0.0.weight"].shape
    output_dim = weights["fc_out.weight"].shape[0]

    wanted = _identity_dict(clip_identity)
    recorded = state.get("clip")
    if wanted is not None and recorded is not None:
        if any(recorded.get(key) != wanted.get(key) for key in _IDENTITY_KEYS):
            raise MappingMismatch(f"This mapping was trained for {_describe(recorded)}, "
                                  f"but the embedder loads {_describe(wanted)}.")
    if wanted is not None and wanted.get("dimensions") not in (None, embed_dim):
        raise MappingMismatch(f"This mapping takes {embed_dim}-d image features, "
                              f"but the embedder loads {_describe(wanted)}.")
    if token_width is not None and token_width != output_dim:
        raise MappingMismatch(f"This mapping makes {output_dim}-d tokens, "
                              f"but the text tower's token width is {token_width}.")

    dropout = state.get("config", {}).get("dropout", 0.1)
    mapping = MappingNetwork(embed_dim=embed_dim, middle_dim=middle_dim, output_dim=output_dim,
                             n_layers=n_layers, dropout=dropout)
    mapping.load_state_dict(weights)
    return mapping.eval()


def save_mapping(mapping, path, *, clip_identity, extra=None):
    """Write ``mapping`` with the CLIP identity it belongs to; atomic (temp file, then rename)."""
    extra = dict(extra or {})
    reserved = {"format", "state_dict_img2text", "config", "clip"} & extra.keys()
    if reserved:
        raise ValueError(f"extra may not set reserved keys: {sorted(reserved)}")
    state = {
        "format": FORMAT,
        "state_dict_img2text": {k: v.detach().cpu().clone() for k, v in mapping.state_dict().items()},
        "config": dict(mapping.config),
        "clip": dict(_identity_dict(clip_identity)),
        **extra,
    }
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(state, out)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- composition ---------------------------------------------------------------------------------


def _tokenize(clip_model, tokenizer, prompts):
    """Token ids [batch, n_ctx] and the boolean mask [batch, n_ctx] of each prompt's ``*``."""
    (star_id,) = tokenizer.encode(STAR)
    limit = clip_model.context_length
    for prompt in prompts:
        stars = prompt.count(STAR)
        if stars != 1:  # more than one: the text has a * of its own
            raise (StrayStar if stars > 1 else PromptError)(f"prompt must contain {STAR} exactly once: {prompt!r}")
        ids = tokenizer.encode(prompt)
        # Count before tokenizer() would truncate: a cut prompt would silently lose the modification.
        if len(ids) + 2 > limit:
            raise PromptTooLong(tokens=len(ids) + 2, limit=limit, prompt=prompt)
        if ids.count(star_id) != 1:
            raise StrayStar(f"write {STAR} as a word of its own, with spaces around it: {prompt!r}")
    ids = tokenizer(list(prompts), context_length=limit)  # [batch, n_ctx]
    return ids, ids == star_id


def compose_text_features(clip_model, tokenizer, token_embeddings, prompts, *, trim=True):
    """Encode ``prompts`` with ``token_embeddings`` [batch, width] in place of each ``*``.

    Returns unnormalised [batch, embed_dim]; ``trim`` as in ``encode_text_ids``.
    """
    if len(prompts) != len(token_embeddings):
        raise ValueError(f"{len(prompts)} prompts for {len(token_embeddings)} token embeddings")
    _require_text_tower(clip_model)
    ids, star = _tokenize(clip_model, tokenizer, prompts)
    return encode_text_ids(clip_model, ids, token_embeddings=token_embeddings, star=star, trim=trim)


def encode_text_ids(clip_model, ids, *, token_embeddings=None, star=None, trim=True):
    """open_clip's ``CLIP.encode_text``, step for step, on token ids [batch, n_ctx]; unnormalised [batch, embed_dim].

    ``token_embeddings`` [batch, width] replace the tokens where ``star`` [batch, n_ctx] is
    true (the pseudo word). ``trim``: run the tower on the positions up to the longest
    prompt's end-of-text token only, not the whole context. The tower is causal, so every
    position up to that token is the same either way (the padding after it is never
    attended to); a 9-token prompt then costs 9 positions of ViT-L-14's 77 (README,
    "Benchmarks"). A tower that is not causal, or pools the last position, runs whole.
    """
    _require_text_tower(clip_model)
    from open_clip.transformer import text_global_pool

    device = clip_model.positional_embedding.device
    ids = ids.to(device)
    star = star.to(device) if star is not None else None
    pool_type, eos_id = clip_model.text_pool_type, getattr(clip_model, "text_eos_id", None)
    attn_mask = clip_model.attn_mask
    length = ids.shape[1]
    if trim and attn_mask is not None and pool_type in ("argmax", "eos", "first"):
        ends = ids.argmax(dim=-1) if pool_type == "argmax" else (
            (ids == eos_id).int().argmax(dim=-1) if pool_type == "eos" else torch.zeros(len(ids), dtype=torch.long))
        length = int(ends.max()) + 1
        ids = ids[:, :length]
        star = star[:, :length] if star is not None else None
        attn_mask = attn_mask[:length, :length]
    cast_dtype = clip_model.transformer.get_cast_dtype()

    x = clip_model.token_embedding(ids)  # [batch, length, width]
    if token_embeddings is not None:
        # torch.where keeps the gradient path into the mapping (Sec. 3.1 trains through the text tower).
        x = torch.where(star[..., None], token_embeddings.to(x.dtype)[:, None, :], x)
    x = x.to(cast_dtype) + clip_model.positional_embedding[:length].to(cast_dtype)
    x = clip_model.transformer(x, attn_mask=attn_mask)
    x = clip_model.ln_final(x)  # [batch, length, width]
    x = text_global_pool(x, ids, pool_type, eos_token_id=eos_id)  # [batch, width]
    projection = clip_model.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
    return x  # [batch, embed_dim]


def has_text_tower(clip_model):
    """Whether ``clip_model`` has open_clip's built-in CLIP text tower (not a Hugging Face text encoder)."""
    return all(hasattr(clip_model, name) for name in ("token_embedding", "positional_embedding", "ln_final"))


def _require_text_tower(clip_model):
    if not has_text_tower(clip_model):
        raise TypeError(f"{type(clip_model).__name__} has no built-in CLIP text tower "
                        "(token_embedding, transformer, ln_final); Pic2Word needs open_clip's CLIP.")


def compose(clip_model, tokenizer, mapping, image_features, texts, *, template=PAPER_TEMPLATE):
    """Return L2-normalised composed queries [batch, embed_dim] for images and modification texts.

    ``image_features`` [batch, embed_dim] are unnormalised; run under ``torch.no_grad()`` with
    ``mapping`` in eval mode for retrieval.
    """
    if template.count(STAR) != 1 or "{text}" not in template:
        raise PromptError(f"template must contain {STAR} once and {{text}}: {template!r}")
    try:
        prompts = [template.format(text=text) for text in texts]
    except (KeyError, IndexError) as error:
        raise PromptError(f"template has a placeholder other than {{text}}: {template!r}") from error
    tokens = mapping(image_features)  # [batch, width]
    return F.normalize(compose_text_features(clip_model, tokenizer, tokens, prompts), dim=-1)


def pseudo_word_features(clip_model, tokenizer, mapping, image_features, *, prompt="a photo of *", trim=True):
    """Unnormalised text features [batch, embed_dim] of ``prompt`` with each image's pseudo word."""
    tokens = mapping(image_features)  # [batch, width]
    return compose_text_features(clip_model, tokenizer, tokens, [prompt] * len(tokens), trim=trim)


# --- training ------------------------------------------------------------------------------------


def mapping_loss(clip_model, tokenizer, mapping, image_features, *, prompt="a photo of *", trim=True):
    """Symmetric InfoNCE between images and "a photo of *" with their pseudo words (Sec. 3.1).

    CLIP is frozen by the caller (``requires_grad_(False)``); only the mapping gets gradients.
    ``trim``: the text tower runs the prompt's 6 positions, not the whole context (the same loss).
    """
    images = F.normalize(image_features, dim=-1)  # [batch, embed_dim]
    texts = F.normalize(pseudo_word_features(clip_model, tokenizer, mapping, image_features,
                                             prompt=prompt, trim=trim), dim=-1)  # [batch, embed_dim]
    logits = clip_model.logit_scale.exp() * images @ texts.T  # [batch, batch]
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def cosine_schedule(step, *, total, warmup, base_lr):
    """Learning rate at ``step``: linear warm-up to ``base_lr``, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if step >= total:
        return 0.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base_lr * (1 + math.cos(math.pi * progress))


def _step_seed(seed, step):
    # One seed per (seed, step), so a run resumed at start_step draws what the full run drew.
    return (seed * 1_000_003 + step) % (2**63 - 1)


DECAY_CHOICES = ("all", "weights")


def optimizer_groups(mapping, *, weight_decay, decay="all"):
    """AdamW parameter groups: ``decay="all"`` decays every parameter, ``"weights"`` only the weight matrices.

    ``"weights"`` is the authors' choice (their main.py leaves biases, norm gains and the logit
    scale without decay); the rule here is by shape: a parameter with fewer than 2 dimensions
    (a bias or a gain) is not decayed. The mapping's parameters keep their order in both cases.
    """
    if decay not in DECAY_CHOICES:
        raise ValueError(f"decay must be one of {DECAY_CHOICES}, not {decay!r}")
    params = [p for p in mapping.parameters() if p.requires_grad]
    if decay == "all":
        return [{"params": params, "weight_decay": weight_decay}]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _check_resumed_groups(optimizer, wanted):
    # load_state_dict takes every hyperparameter from the saved groups: a resume that asks for
    # other betas, eps or weight decay would run with the old ones without a word.
    saved = [(tuple(g["betas"]), g["eps"], g["weight_decay"], len(g["params"])) for g in optimizer.param_groups]
    asked = [(tuple(g["betas"]), g["eps"], g["weight_decay"], len(g["params"])) for g in wanted]
    if saved != asked:
        raise ValueError("the optimizer state was saved with other settings (betas, eps, weight decay, groups): "
                         f"{saved} there, {asked} asked")


def train_mapping(clip_model, tokenizer, features, *, steps, batch_size=64, lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                  weight_decay=0.1, decay="all", warmup=None, seed=0, mapping=None, optimizer_state=None,
                  start_step=0, until=None, progress=None, middle_dim=512, dropout=0.1):
    """Train a mapping on precomputed unnormalised image features [n, embed_dim] of unlabeled images.

    ``steps`` is the length of the schedule; steps ``start_step`` .. ``until`` (default ``steps``)
    run now. Resuming with the returned mapping, optimizer state and step continues exactly;
    an optimizer state saved with other ``betas``, ``eps``, ``weight_decay`` or ``decay`` is a
    ``ValueError``. AdamW; ``decay`` as in ``optimizer_groups``; ``warmup`` steps of linear
    warm-up (default ``steps // 20``), then cosine decay to 0 at ``steps``.
    CLIP's parameters are frozen for the call and their ``requires_grad`` restored afterwards.
    Return ``{"mapping" (eval mode), "optimizer_state", "step" (next to run), "losses"}``.
    """
    until = steps if until is None else min(until, steps)
    warmup = max(1, steps // 20) if warmup is None else warmup
    device = clip_model.positional_embedding.device
    features = features.to(device)
    if mapping is None:
        # The initial weights come from ``seed`` too: two runs with one seed start alike.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mapping = MappingNetwork(embed_dim=features.shape[1], middle_dim=middle_dim, dropout=dropout,
                                     output_dim=clip_model.token_embedding.embedding_dim).to(device)
    groups = optimizer_groups(mapping, weight_decay=weight_decay, decay=decay)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)
    if optimizer_state is not None:
        wanted = copy.deepcopy(optimizer.param_groups)
        optimizer.load_state_dict(copy.deepcopy(optimizer_state))  # Adam updates its state in place
        _check_resumed_groups(optimizer, wanted)
    batch_size = min(batch_size, len(features))
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [torch.cuda.current_device() if device.index is None else device.index]
    was_trainable = {name: p.requires_grad for name, p in clip_model.named_parameters()}
    clip_model.requires_grad_(False)
    mapping.train()
    losses = []
    try:
        for step in range(start_step, until):
            for group in optimizer.param_groups:
                group["lr"] = cosine_schedule(step, total=steps, warmup=warmup, base_lr=lr)
            generator = torch.Generator().manual_seed(_step_seed(seed, step))
            batch = features[torch.randperm(len(features), generator=generator)[:batch_size].to(device)]
            # Dropout draws from the global RNG: seed it per step too, without disturbing the caller's.
            with torch.random.fork_rng(devices=cuda_devices):
                torch.manual_seed(_step_seed(seed, step))
                loss = mapping_loss(clip_model, tokenizer, mapping, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if progress is not None:
                progress(step, losses[-1])
    finally:
        for name, param in clip_model.named_parameters():
            param.requires_grad_(was_trainable[name])
    return {"mapping": mapping.eval(), "optimizer_state": optimizer.state_dict(),
            "step": max(until, start_step), "losses": losses}

"""Train the demo shop's small CLIP on image-caption pairs of the synthetic catalogue.

No pretrained CLIP weights are available to the demo, so it trains its own: open_clip's
architecture and ``ClipLoss`` (Radford et al. 2021, section 2.3), photos from
``shop_demo.catalog.generator.render`` and captions from ``captions_for``.  Products whose
attribute combination ``is_held_out`` never enter training; ``attribute_accuracy`` measures
zero-shot classification on them against products of seen combinations.

Pure torch + open_clip + numpy; no Django imports.
"""

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from p2w_search.pic2word import encode_text_ids
from shop_demo.catalog.generator import (
    COLOURS,
    KINDS,
    PATTERNS,
    captions_for,
    generate_products,
    is_held_out,
    render,
)

__all__ = ["TRAIN_VARIANTS", "TrainingPairs", "train_clip", "save_checkpoint", "save_training_state",
           "attribute_accuracy"]

# Training photos use variants [0, TRAIN_VARIANTS); evaluation photos use variants above it,
# so an evaluation photo of a seen product is never one the model trained on.
TRAIN_VARIANTS = 1 << 31
_RESUME_MUST_MATCH = ("model_name", "seed", "batch_size", "catalog_size", "pool_size")


class TrainingPairs:
    """Image-caption pairs of the training products (those not ``is_held_out``).

    The photos are rendered once into a pool of ``pool_size`` (product, random variant)
    pairs: rendering costs about as much CPU as a training step per image, and a pool
    rendered by all cores is ~4x cheaper than rendering every batch afresh.  Captions
    are drawn afresh for every sample, so phrasing still varies when a photo repeats.
    ``batch(step, n)`` depends only on ``(seed, step)``, so a resumed run sees the same
    stream as an uninterrupted one.
    """

    def __init__(self, products, *, seed, pool_size, image_size, workers=None, progress=None):
        self.products = [p for p in products if not is_held_out(p.attributes)]
        if not self.products:
            raise ValueError("no training products: every product is held out")
        self.seed = seed
        rng = np.random.default_rng([seed, 0x9001])
        self.pool_products = rng.integers(len(self.products), size=pool_size)  # [pool]
        self.pool_variants = rng.integers(TRAIN_VARIANTS, size=pool_size)  # [pool]
        jobs = [(self.products[i], seed, image_size, int(v)) for i, v in zip(self.pool_products, self.pool_variants)]
        self.images = _render_all(jobs, workers=workers, progress=progress)  # [pool, size, size, 3] uint8

    def batch(self, step, n):
        """Return ``n`` distinct pool photos (PIL) and one caption each for training step ``step``."""
        photos, captions = self.arrays(step, n)
        return [Image.fromarray(photo) for photo in photos], captions

    def arrays(self, step, n):
        """``batch(step, n)`` with the photos as one uint8 array [n, size, size, 3]."""
        rng = np.random.default_rng([self.seed, step, 0xB47C])
        # Without replacement: a photo twice in one batch would be its own false negative.
        picks = rng.choice(len(self.images), size=n, replace=False)
        captions = []
        for i, pick in enumerate(picks):
            product = self.products[self.pool_products[pick]]
            # One rng per sample: the template and synonyms vary from sample to sample.
            rng = np.random.default_rng([self.seed, step, i, 0xCA9])
            captions.append(captions_for(product.attributes, rng, k=1)[0])
        return self.images[picks], captions


def _photo_transform(preprocess, sample):
    """A function from uint8 photos [n, size, size, 3] to the model's input [n, 3, size, size].

    ``preprocess`` photo by photo (PIL, then a tensor each) took about a tenth of a training step. When
    resizing and cropping leave the pool's photos as they are, it is a cast and ``Normalize``, done
    here on the whole batch at once; the fast path is used only when it gives ``preprocess``'s
    values exactly on ``sample`` (one photo), and the photo-by-photo path otherwise.
    """
    from torchvision.transforms import Normalize

    def photo_by_photo(photos):
        return torch.stack([preprocess(Image.fromarray(photo)) for photo in photos])

    normalize = [t for t in getattr(preprocess, "transforms", ()) if isinstance(t, Normalize)]
    if len(normalize) != 1:
        return photo_by_photo
    mean = torch.tensor(normalize[0].mean).view(1, 3, 1, 1)
    std = torch.tensor(normalize[0].std).view(1, 3, 1, 1)

    def batched(photos):
        return torch.from_numpy(photos).permute(0, 3, 1, 2).float().div(255).sub(mean).div(std).contiguous()

    return batched if torch.equal(batched(sample[None]), photo_by_photo(sample[None])) else photo_by_photo


class _Tokens:
    """``tokenizer(captions)`` with each caption's row kept: the demo's captions repeat within a run."""

    def __init__(self, tokenizer):
        self.tokenizer, self.rows = tokenizer, {}

    def __call__(self, captions):
        new = list(dict.fromkeys(c for c in captions if c not in self.rows))
        if new:
            self.rows.update(zip(new, self.tokenizer(new)))
        return torch.stack([self.rows[c] for c in captions])  # [batch, context]


def _render_one(job):
    product, seed, size, variant = job
    return np.asarray(render(product, seed=seed, size=size, variant=variant), dtype=np.uint8)


def _render_all(jobs, *, workers, progress):
    workers = workers or os.cpu_count() or 1
    out, chunk = [], 512
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        mapper = (lambda js: pool.map(_render_one, js, chunksize=32)) if pool else (lambda js: map(_render_one, js))
        for start in range(0, len(jobs), chunk):
            out.extend(mapper(jobs[start:start + chunk]))
            if progress:
                progress("render", len(out), len(jobs))
    finally:
        if pool:
            pool.shutdown()
    return np.stack(out)


def _adamw(model, lr, weight_decay):
    # open_clip's training exclusions: no decay on gains, biases and the temperature.
    def exclude(name, p):
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if exclude(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in params if not exclude(n, p)], "weight_decay": weight_decay},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)  # CLIP paper's ViT settings


def _lr_at(step, *, lr, warmup, steps):
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * lr * (1 + math.cos(math.pi * min(1.0, progress)))


def _features(model, images, texts):
    """``model(images, texts)``: normalised image and text features [batch, dim] and the logit scale.

    The text tower runs only as far as the batch's longest caption (``encode_text_ids(trim=True)``):
    it is causal, so the padding after the end-of-text token changes nothing, and the 20 or fewer of 32
    positions the demo's captions take cut a step's time by 8-13 %
    (``bench/clip_training_step.py``). The shipped weights were trained on the whole context.
    """
    text = F.normalize(encode_text_ids(model, texts, trim=True), dim=-1)
    return model.encode_image(images, normalize=True), text, model.logit_scale.exp()


def _image_size(model):
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _mask_patches(model, fraction):
    """Drop ``fraction`` of the vision tower's patch tokens at random in training (FLIP; 0: keep all).

    open_clip's ``PatchDropout`` keeps the class token and acts only in train mode, so the
    weights serve every patch as before; a step costs less because the tower sees fewer tokens.
    """
    from open_clip.transformer import PatchDropout

    model.visual.patch_dropout = PatchDropout(fraction) if fraction else torch.nn.Identity()


def train_clip(*, model_name, config_path, steps, batch_size, lr, warmup, weight_decay, seed, catalog_size,
               pool_size=20000, patch_dropout=0.0, unmasked_steps=0, render_workers=None, progress=None,
               time_limit_s=None, resume=None):
    """Train ``model_name`` (registered from ``config_path``) from scratch or from ``resume``.

    ``patch_dropout`` is the fraction of the photo's patches each step leaves out (FLIP, Li et
    al., CVPR 2023), except in the last ``unmasked_steps`` steps, which see every patch as the
    trained model will.

    ``progress(stage, done, total, **info)`` is called with stage "render" while the photo
    pool is drawn and "train" after every step (info: loss, images_per_s, lr).  Training
    stops before a step that would end past ``time_limit_s`` seconds (counted from the
    call, rendering included); the result's "step" then is less than "steps".  ``resume``
    is a file of ``save_training_state`` with the same seed, batch size, catalogue and pool.

    Returns a dict: model, optimizer, tokenizer, preprocess, step, steps, losses (one per
    step, all runs), seconds, train_seconds, render_seconds, images_per_s, stopped_early,
    hparams.
    """
    import open_clip
    from open_clip.loss import ClipLoss

    from p2w_search.embedders.openclip import register_model_config

    started = time.monotonic()
    hparams = dict(model_name=model_name, steps=steps, batch_size=batch_size, lr=lr, warmup=warmup,
                   weight_decay=weight_decay, seed=seed, catalog_size=catalog_size, pool_size=pool_size,
                   patch_dropout=patch_dropout, unmasked_steps=unmasked_steps)
    if not 0 <= patch_dropout < 1:
        raise ValueError(f"patch_dropout must be at least 0 and below 1, not {patch_dropout}")
    if not 0 <= unmasked_steps <= steps:
        raise ValueError(f"unmasked_steps must be from 0 to steps ({steps}), not {unmasked_steps}")
    register_model_config(config_path)
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name)
    tokenizer = open_clip.get_tokenizer(model_name)
    optimizer = _adamw(model, lr, weight_decay)
    first, losses = 0, []
    if resume:
        state = torch.load(resume, map_location="cpu", weights_only=True)
        wrong = [k for k in _RESUME_MUST_MATCH if state["hparams"][k] != hparams[k]]
        if wrong:
            raise ValueError(f"cannot resume {resume}: it was trained with other {', '.join(wrong)}")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        first, losses = int(state["step"]), list(state["losses"])

    pairs = TrainingPairs(generate_products(catalog_size, seed=seed), seed=seed, pool_size=pool_size,
                          image_size=_image_size(model), workers=render_workers, progress=progress)
    render_seconds = time.monotonic() - started
    to_input, tokens = _photo_transform(preprocess, pairs.images[0]), _Tokens(tokenizer)
    loss_fn = ClipLoss()
    model.train()
    step, step_seconds, train_seconds, stopped_early = first, 0.0, 0.0, False
    for step in range(first, steps):
        if time_limit_s is not None and time.monotonic() - started + step_seconds > time_limit_s:
            stopped_early = True
            break
        tick = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, lr=lr, warmup=warmup, steps=steps)
        _mask_patches(model, patch_dropout if step < steps - unmasked_steps else 0.0)
        photos, captions = pairs.arrays(step, batch_size)
        images = to_input(photos)  # [batch, 3, size, size]
        texts = tokens(captions)  # [batch, context]
        loss = loss_fn(*_features(model, images, texts))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # CLIP's cap on the temperature (paper, 2.5)
        losses.append(loss.item())
        step_seconds = time.monotonic() - tick
        train_seconds += step_seconds
        if progress:
            progress("train", step + 1, steps, loss=losses[-1], lr=optimizer.param_groups[0]["lr"],
                     images_per_s=(step + 1 - first) * batch_size / train_seconds)
    else:
        step = steps
    _mask_patches(model, 0.0)
    trained = step - first
    return dict(model=model, optimizer=optimizer, tokenizer=tokenizer, preprocess=preprocess, step=step,
                steps=steps, losses=losses, seconds=time.monotonic() - started, train_seconds=train_seconds,
                render_seconds=render_seconds, stopped_early=stopped_early, hparams=hparams,
                images_per_s=trained * batch_size / train_seconds if train_seconds else 0.0)


def save_checkpoint(model, path, *, half=True, extra=None):
    """Write ``{"state_dict": ..., **extra}`` to ``path`` atomically (a temp file, then a rename).

    ``half`` stores floating tensors as float16; ``open_clip.create_model_and_transforms(name,
    pretrained=path)`` loads the file, ``load_state_dict`` casting back to the model's dtype.
    ``extra`` must hold only what ``torch.load(weights_only=True)`` accepts (tensors, Python
    numbers, strings, lists, dicts).
    """
    if extra and "state_dict" in extra:
        raise ValueError("extra must not contain 'state_dict'")
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
             for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": state, **(extra or {})}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind
    return path


def save_training_state(result, path):
    """Write a float32 checkpoint with optimizer state, step and losses: ``train_clip(resume=path)`` reads it."""
    return save_checkpoint(result["model"], path, half=False, extra={
        "optimizer": result["optimizer"].state_dict(), "step": result["step"], "losses": result["losses"],
        "hparams": result["hparams"],
    })


_PATTERN_WORDS = {"solid": "plain", "stripes": "striped", "dots": "polka-dot", "checks": "checked"}


def _prompt(kind, colour, pattern):
    body = f"{colour} {_PATTERN_WORDS[pattern]} {kind}"
    if kind == "trousers":
        return f"a photo of a pair of {body}"
    return f"a photo of {'an' if body[0] in 'aeiou' else 'a'} {body}"


def attribute_accuracy(model, tokenizer, preprocess, products, seed, *, batch_size=256):
    """Zero-shot accuracy of kind, colour and pattern on one fresh photo of each product.

    Each class is the mean of the normalised text features of "a photo of a {colour}
    {pattern} {kind}" over all values of the other two attributes (CLIP's prompt
    ensembling, paper section 3.1.4).  Photos use render ``seed`` and variants above
    ``TRAIN_VARIANTS``.  Returns ``{"seen": {...}, "held_out": {...}}``, each with n and the
    accuracy of kind, colour, pattern and all three at once (None when n is 0).  The
    model's train/eval mode is restored afterwards.
    """
    axes = {"kind": KINDS, "colour": tuple(COLOURS), "pattern": PATTERNS}
    prompts = [_prompt(k, c, p) for k in KINDS for c in COLOURS for p in PATTERNS]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            text = F.normalize(model.encode_text(tokenizer(prompts)), dim=-1)
            text = text.view(len(KINDS), len(COLOURS), len(PATTERNS), -1)  # [kind, colour, pattern, dim]
            classes = {name: F.normalize(text.mean(dim=[a for a in range(3) if a != axis]), dim=-1)
                       for axis, name in enumerate(axes)}  # name -> [values, dim]
            size = _image_size(model)
            hits = {name: [] for name in axes}
            for start in range(0, len(products), batch_size):
                chunk = products[start:start + batch_size]
                images = torch.stack([preprocess(render(p, seed=seed, size=size, variant=TRAIN_VARIANTS + p.index))
                                      for p in chunk])  # [batch, 3, size, size]
                features = F.normalize(model.encode_image(images), dim=-1)  # [batch, dim]
                for name, values in axes.items():
                    predicted = (features @ classes[name].T).argmax(dim=-1).tolist()
                    hits[name] += [values[i] == getattr(p.attributes, name) for i, p in zip(predicted, chunk)]
    finally:
        model.train(was_training)
    held = np.array([is_held_out(p.attributes) for p in products], dtype=bool)
    report = {}
    for group, mask in (("seen", ~held), ("held_out", held)):
        correct = {name: np.asarray(h, dtype=bool)[mask] for name, h in hits.items()}
        n = int(mask.sum())
        report[group] = {"n": n, **{name: float(c.mean()) if n else None for name, c in correct.items()},
                         "all": float(np.logical_and.reduce(list(correct.values())).mean()) if n else None}
    return report

"""Where a training step of the demo CLIP goes, and how much a cheaper step buys.

Issue 12's budget for the demo CLIP (about 45 CPU minutes with the mapping) is spent by a fixed
number of steps; more steps in the same time need a cheaper step. Each round times ``--steps``
whole steps of each kind, data preparation included, on the training stream (``TrainingPairs``
of a 1024-photo pool, a new batch each step), alternating so that load from other jobs falls on
all of them:

- the step the 4050-step CLIP of 2026-12-01 was trained with (each photo through
  ``preprocess``, the tokenizer on every caption, ``model(images, texts)``: the whole context),
  the baseline;
- the text tower cut at the batch's longest caption (``training._features``: the same result,
  since the tower is causal);
- then the batch's photos normalised as one tensor and each caption's tokens kept
  (``training._photo_transform``, ``training._Tokens``: the same input, tested);
- then a part of the photo's patches left out (FLIP's patch dropout, ``train_clip(patch_dropout=...)``):
  a quarter, a half (the shipped CLIP's run) and three quarters.

The figures are medians over the rounds, as ratios to the baseline.

    .venv/bin/python -m bench.clip_training_step --rounds 5 --steps 8
"""

import argparse
import itertools
import statistics
import time

from bench.report import markdown_table, write_results

NAME = "clip_training_step"
CONFIG = "shop_demo/clip/p2w-demo-small.json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="steps of each kind per round")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)

    import open_clip
    import torch
    from open_clip.loss import ClipLoss

    from p2w_search.embedders.openclip import register_model_config
    from shop_demo.catalog.generator import generate_products
    from shop_demo.clip.training import TrainingPairs, _adamw, _features, _mask_patches, _photo_transform, _Tokens

    register_model_config(CONFIG)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("p2w-demo-small")
    tokenizer = open_clip.get_tokenizer("p2w-demo-small")
    optimizer = _adamw(model, 5e-4, 0.1)
    pairs = TrainingPairs(generate_products(500, seed=0), seed=0, pool_size=1024, image_size=64)
    batched, tokens = _photo_transform(preprocess, pairs.images[0]), _Tokens(tokenizer)
    loss_fn = ClipLoss()
    model.train()
    counter = itertools.count()

    def one_by_one():
        photos, captions = pairs.batch(next(counter), args.batch_size)
        return torch.stack([preprocess(photo) for photo in photos]), tokenizer(captions)

    def together():
        photos, captions = pairs.arrays(next(counter), args.batch_size)
        return batched(photos), tokens(captions)

    def whole(images, texts):
        return model(images, texts)[:3]

    def cut(images, texts):
        return _features(model, images, texts)

    kinds = {  # name: (data, features, patch dropout)
        "the 4050-step CLIP's run (photo by photo, whole context)": (one_by_one, whole, 0.0),
        "text cut at the longest caption": (one_by_one, cut, 0.0),
        "+ photos normalised together, token rows kept: train_clip now": (together, cut, 0.0),
        "+ patch dropout 0.25": (together, cut, 0.25),
        "+ patch dropout 0.5 (the shipped CLIP's run)": (together, cut, 0.5),
        "+ patch dropout 0.75": (together, cut, 0.75),
    }

    def step(kind):
        data, features, dropout = kind
        _mask_patches(model, dropout)
        loss = loss_fn(*features(*data()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for kind in kinds.values():  # warm-up: allocator and thread pools
        step(kind)
    samples = {name: [] for name in kinds}
    for round_ in range(args.rounds):
        order = list(kinds.items())
        for name, kind in (order if round_ % 2 == 0 else order[::-1]):
            started = time.perf_counter()
            for _ in range(args.steps):
                step(kind)
            samples[name].append((time.perf_counter() - started) / args.steps)
        print({name[:24]: round(values[-1] * 1000) for name, values in samples.items()}, flush=True)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians[next(iter(kinds))]
    rows = [[name, medians[name] * 1000, args.batch_size / medians[name], medians[name] / baseline] for name in kinds]
    table = markdown_table(["step", "ms (median)", "images/s", "ratio to the baseline"], rows)
    write_results(NAME, {"rounds": args.rounds, "steps": args.steps, "batch_size": args.batch_size,
                         "seconds": samples},
                  f"One training step of the demo CLIP (batch {args.batch_size}, AdamW, the batch's data prepared "
                  f"in the step), {args.rounds} rounds of {args.steps} steps each, alternating.\n\n{table}")


if __name__ == "__main__":
    main()

"""Where a training step of the demo CLIP goes, and how much a faster step could buy.

Issue 12's budget for the demo CLIP (about 45 CPU minutes with the mapping) is spent by
4050 steps; more steps in the same time need a cheaper step. Each round times ``--steps``
steps of four kinds on one real batch of the training stream (photos and captions of
``TrainingPairs``, 128 of each), alternating so that load from other jobs falls on all of them:

- the step the shipped weights were trained with (``model(images, texts)``: the whole context), the baseline;
- ``train_clip``'s step now, the text tower cut at the batch's longest caption
  (``training._features``: the same result, since the tower is causal);
- the vision half alone and the text half alone (the other side's features a fixed tensor).

The figures are medians over the rounds, as ratios to the baseline.

    .venv/bin/python -m bench.clip_training_step --rounds 3 --steps 8
"""

import argparse
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
    import torch.nn.functional as F
    from open_clip.loss import ClipLoss

    from p2w_search.embedders.openclip import register_model_config
    from p2w_search.pic2word import encode_text_ids
    from shop_demo.catalog.generator import generate_products
    from shop_demo.clip.training import TrainingPairs, _adamw, _features

    register_model_config(CONFIG)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("p2w-demo-small")
    tokenizer = open_clip.get_tokenizer("p2w-demo-small")
    optimizer = _adamw(model, 5e-4, 0.1)
    pairs = TrainingPairs(generate_products(500, seed=0), seed=0, pool_size=4 * args.batch_size, image_size=64)
    photos, captions = pairs.batch(0, args.batch_size)
    images = torch.stack([preprocess(photo) for photo in photos])  # [batch, 3, 64, 64]
    texts = tokenizer(captions)  # [batch, context]
    positions = int(texts.argmax(dim=-1).max()) + 1
    fixed = F.normalize(torch.randn(args.batch_size, model.text_projection.shape[1]), dim=-1)  # [batch, dim]
    loss_fn = ClipLoss()
    model.train()

    def image_side():
        return model.encode_image(images, normalize=True)

    kinds = {
        "whole context (the shipped weights' run)": lambda: model(images, texts)[:3],
        f"train_clip now: text cut at the longest caption ({positions} of {texts.shape[1]} positions)":
            lambda: _features(model, images, texts),
        "vision half alone": lambda: (image_side(), fixed, model.logit_scale.exp()),
        "text half alone (whole context)": lambda: (
            fixed, F.normalize(encode_text_ids(model, texts, trim=False), dim=-1), model.logit_scale.exp()),
    }

    def step(features):
        loss = loss_fn(*features())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for features in kinds.values():  # warm-up: allocator and thread pools
        step(features)
    samples = {name: [] for name in kinds}
    for round_ in range(args.rounds):
        order = list(kinds.items())
        for name, features in (order if round_ % 2 == 0 else order[::-1]):
            started = time.perf_counter()
            for _ in range(args.steps):
                step(features)
            samples[name].append((time.perf_counter() - started) / args.steps)
        print({name[:24]: round(values[-1] * 1000) for name, values in samples.items()}, flush=True)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians[next(iter(kinds))]
    rows = [[name, medians[name] * 1000, args.batch_size / medians[name], medians[name] / baseline] for name in kinds]
    table = markdown_table(["step", "ms (median)", "images/s", "ratio to the baseline"], rows)
    write_results(NAME, {"rounds": args.rounds, "steps": args.steps, "batch_size": args.batch_size,
                         "positions": positions, "seconds": samples},
                  f"One training step of the demo CLIP (batch {args.batch_size}, AdamW), {args.rounds} rounds of "
                  f"{args.steps} steps each, alternating.\n\n{table}")


if __name__ == "__main__":
    main()

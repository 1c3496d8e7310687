"""A Pic2Word mapping trained on the shop's text as well as its images (LinCIR-style), for issue 12.

LinCIR (Gu et al., CVPR 2024) trains the pseudo-word mapping on text alone: a product text's
CLIP text features, with noise to bridge the gap to image features, go through the mapping,
and "a photo of *" with that pseudo word must encode back to the text's own features. Here it
is combined with Pic2Word's image-only objective: starting from the shipped mapping, each step
adds the two losses (images of the training catalog, and the titles and captions of the same
products; held-out combinations left out of both, no triplets). ``--text-weight 0`` is the
control: the same steps on images only, so that more training is not mistaken for the text.

Both use the training catalog of ``train_demo_mapping`` (catalog seed 1000, held-out
combinations left out), one photo per product, the shipped demo CLIP frozen, AdamW lr 1e-5
(a fine-tune), batch 128 per loss. Run from the repository root::

    .venv/bin/python -m bench.text_mapping --out var/issue12/mappings/text.pt --steps 150
    .venv/bin/python -m bench.text_mapping --out var/issue12/mappings/images-only.pt --steps 150 --text-weight 0

then score either with ``bench.rerank_levers --mapping <file>`` (validation catalogs only).
``--from-scratch`` trains a new mapping instead, LinCIR's own setting (with the shipped
mapping's schedule: ``--steps 2400 --lr 1e-4``); its control is the same run with
``--text-weight 0``. ``--cache`` holds the features of one CLIP: give each CLIP its own.
"""

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench._vectors import setup_django

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "shop_demo" / "clip" / "weights" / "p2w-demo-small-mapping.pt"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--text-weight", type=float, default=1.0)
    parser.add_argument("--noise", type=float, default=0.5, help="largest noise norm, relative to the feature norm")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--products", type=int, default=4000)
    parser.add_argument("--cache", default=str(REPO / "var" / "issue12" / "train-features.npz"),
                        help="features of the training photos and texts, computed once per CLIP")
    parser.add_argument("--from-scratch", action="store_true",
                        help="a new mapping (seed 0, the shipped layout) instead of the shipped one: LinCIR's setting")
    args = parser.parse_args(argv)
    setup_django()
    import torch
    import torch.nn.functional as F
    from django.conf import settings

    from p2w_search.embedders.openclip import OpenCLIPEmbedder
    from p2w_search.pic2word import (
        MappingNetwork,
        cosine_schedule,
        load_mapping,
        mapping_loss,
        optimizer_groups,
        pseudo_word_features,
        save_mapping,
    )
    from shop_demo.catalog import generator

    torch.manual_seed(0)
    config = settings.P2W_SEARCH["EMBEDDERS"]["default"]
    embedder = OpenCLIPEmbedder("default", {**config, "MAPPING": None})
    loaded = embedder.load()
    cache = Path(args.cache)
    if cache.exists():
        data = np.load(cache)
        images, texts = data["images"], data["texts"]
    else:
        started = time.monotonic()
        catalog = [p for p in generator.generate_products(args.products, seed=1000)
                   if not generator.is_held_out(p.attributes)]
        from bench._vectors import embed_products

        images = embed_products(embedder, catalog, seed=1000)  # raw, one photo per product
        rng = np.random.default_rng(0)
        strings = sorted({p.title for p in catalog} | {c for p in catalog
                                                        for c in generator.captions_for(p.attributes, rng, k=3)})
        texts = embedder.embed_texts(strings, normalize=False)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, texts=texts)
        print(f"{len(images)} images, {len(texts)} texts in {time.monotonic() - started:.0f} s", flush=True)
    images = torch.as_tensor(images)
    texts = torch.as_tensor(texts)
    scale = images.norm(dim=-1).mean()  # text features are fed at the images' mean norm

    identity = asdict(loaded.identity)
    mapping = load_mapping(str(SHIPPED), clip_identity=identity)
    clip = loaded.model
    if args.from_scratch:
        torch.manual_seed(0)  # the same first weights with and without the text loss
        mapping = MappingNetwork(**{**mapping.config, "embed_dim": images.shape[1],
                                    "output_dim": clip.token_embedding.embedding_dim})
    clip.requires_grad_(False)
    optimizer = torch.optim.AdamW(optimizer_groups(mapping, weight_decay=0.1), lr=args.lr)
    mapping.train()
    generator_ = torch.Generator().manual_seed(0)
    started, log = time.monotonic(), []
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_schedule(step, total=args.steps, warmup=max(1, args.steps // 20), base_lr=args.lr)
        batch = images[torch.randperm(len(images), generator=generator_)[:128]]
        loss = mapping_loss(clip, loaded.tokenizer, mapping, batch)
        text_loss = torch.zeros(())
        if args.text_weight:
            clean = F.normalize(texts[torch.randperm(len(texts), generator=generator_)[:128]], dim=-1)
            sigma = torch.rand(len(clean), 1, generator=generator_) * args.noise
            noise = F.normalize(torch.randn(clean.shape, generator=generator_), dim=-1) * sigma
            noisy = (clean + noise) * scale
            words = F.normalize(pseudo_word_features(clip, loaded.tokenizer, mapping, noisy), dim=-1)
            logits = clip.logit_scale.exp() * clean @ words.T
            labels = torch.arange(len(logits))
            text_loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            loss = loss + args.text_weight * text_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log.append((float(loss), float(text_loss)))
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.3f} (text {text_loss.item():.3f}), "
                  f"{time.monotonic() - started:.0f} s", flush=True)
    mapping.eval()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_mapping(mapping, out, clip_identity=identity, extra={"training": {
        "from": "scratch" if args.from_scratch else "shipped mapping", "steps": args.steps,
        "text_weight": args.text_weight, "noise": args.noise, "lr": args.lr, "images": len(images),
        "texts": len(texts)}})
    out.with_suffix(".json").write_text(json.dumps({"wall_s": time.monotonic() - started, "args": vars(args),
                                                    "last_losses": log[-5:]}))
    print(f"wrote {out} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

"""A stand-in for a real CLIP: an open_clip architecture with random weights, and a random Pic2Word mapping for it.

Random weights have the shapes and the cost of the released ones, which is all a speed
benchmark needs. The checkpoint is written in half precision, as released weights are; the
mapping carries the stand-in's identity, so the app loads it as it would a trained one.

    .venv/bin/python -m bench.stand_in ViT-B-32      # var/ViT-B-32-random.pt and var/ViT-B-32-random-mapping.pt
    P2W_CLIP_MODEL=ViT-B-32 P2W_CLIP_PRETRAINED=$PWD/var/ViT-B-32-random.pt P2W_CLIP_MODEL_CONFIG= \\
      P2W_MAPPING=$PWD/var/ViT-B-32-random-mapping.pt bench/run query_latency --name query_latency-vit-b-32
"""

import argparse
import os
from dataclasses import asdict

from shop_demo.services import REPO_DIR


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("architecture", help="an open_clip architecture name, e.g. ViT-B-32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import open_clip
    import torch

    folder = REPO_DIR / "var"
    folder.mkdir(exist_ok=True)
    checkpoint = folder / f"{args.architecture}-random.pt"
    mapping_path = folder / f"{args.architecture}-random-mapping.pt"
    torch.manual_seed(args.seed)
    model = open_clip.create_model(args.architecture)
    torch.save({"state_dict": model.half().state_dict()}, checkpoint)

    os.environ.update(DJANGO_SETTINGS_MODULE="shop_demo.settings", P2W_CLIP_MODEL=args.architecture,
                      P2W_CLIP_PRETRAINED=str(checkpoint), P2W_CLIP_MODEL_CONFIG="", P2W_MAPPING="")
    import django

    django.setup()
    from p2w_search.embedders import get_embedder
    from p2w_search.pic2word import MappingNetwork, save_mapping

    loaded = get_embedder().load()  # the identity (checksum, dimensions) the app gives this checkpoint
    mapping = MappingNetwork(embed_dim=loaded.identity.dimensions,
                             output_dim=loaded.model.token_embedding.weight.shape[1])
    save_mapping(mapping, mapping_path, clip_identity=asdict(loaded.identity))
    print(f"{checkpoint}\n{mapping_path}\n{loaded.identity}")


if __name__ == "__main__":
    main()

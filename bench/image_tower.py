"""The image tower of real CLIP architectures on CPU: what a shopper's photo query and a catalog image cost.

A photo query is a JPEG the shopper uploads: decoded, checked and preprocessed as the app
does it (``imaging.load_image``, the embedder's transform), then one forward pass at batch 1.
The catalog's ingest runs the forward pass at batch 8. Measured with ViT-B-32 and ViT-L-14
(random weights: the same shapes and cost as the released ones) at 1 and 2 torch threads,
median of ``--repeats``, beside the shipped demo CLIP in the same run as the baseline. The
text side (text and composed queries) is ``bench/text_tower.py``.

    bench/run image_tower --repeats 5
"""

import argparse
import io
import os
import statistics
import time

from bench.report import markdown_table, write_results

NAME = "image_tower"
PHOTO_SIZE = (1280, 960)  # a phone photo after the browser scaled it down (README, Shoppers)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="demo,ViT-B-32,ViT-L-14",
                        help="'demo' (the shipped CLIP) and open_clip architecture names")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts, each measured")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import numpy as np
    import open_clip
    import torch
    from PIL import Image

    from bench._vectors import setup_django

    setup_django()  # the app's image limits, and the demo's CLIP
    from p2w_search.conf import image_limits
    from p2w_search.imaging import load_image

    limits = image_limits()

    photo = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*PHOTO_SIZE[::-1], 3), dtype=np.uint8)).save(photo, "JPEG", quality=90)
    photo = photo.getvalue()
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model, preprocess = _model(name, open_clip)
        size = model.visual.image_size
        batch = torch.stack([preprocess(load_image(photo, **limits))] * 8)
        for threads in (int(n) for n in args.threads.split(",")):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                photo_s = _median(lambda: model.encode_image(preprocess(load_image(photo, **limits)).unsqueeze(0)),
                                  args.repeats)
                batch_s = _median(lambda: model.encode_image(batch), args.repeats)
            rows.append({"model": name, "threads": threads, "input": size, "photo_query_ms": photo_s * 1000,
                         "batch8_ms": batch_s * 1000, "images_per_s": 8 / batch_s})
            print(rows[-1], flush=True)
    base = {row["threads"]: row for row in rows if row["model"] == rows[0]["model"]}
    table = markdown_table(
        ["model", "threads", "input px", "photo query ms", "x the demo's", "batch of 8 ms", "images/s"],
        [[r["model"], r["threads"], r["input"], r["photo_query_ms"], r["photo_query_ms"] / base[r["threads"]][
            "photo_query_ms"], r["batch8_ms"], r["images_per_s"]] for r in rows])
    write_results(NAME, {"repeats": args.repeats, "photo": list(PHOTO_SIZE), "load": os.getloadavg(), "rows": rows},
                  f"A {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG photo query (decoded, checked, preprocessed, one forward "
                  f"pass) and forward passes at batch 8 (ingest), CPU, median of {args.repeats}, random weights for "
                  f"the open_clip architectures; load average at the end {os.getloadavg()[0]:.1f}.\n\n" + table)


def _model(name, open_clip):
    """``(model, preprocess)``: the shipped demo CLIP for 'demo', else the architecture with random weights."""
    if name == "demo":
        from p2w_search.embedders import get_embedder

        loaded = get_embedder().load()
        return loaded.model, loaded.preprocess
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    return model.eval(), preprocess


def _median(function, repeats):
    function()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


if __name__ == "__main__":
    main()

"""The GPU check: mixed precision against CPU fp32, and throughput at batch 1 to 128.

For the shipped demo CLIP (with its mapping) and ViT-B-32 and ViT-L-14 stand-ins (random
weights and a random mapping: the shapes and cost of the released models):

- **Fidelity**: image, text and composed (Pic2Word) features on the device in fp32 and under
  fp16 and bf16 autocast, each against the same inputs on the CPU in fp32: the smallest cosine
  over the inputs. The goal is at least 0.999 for every model, precision and kind.
- **Throughput**: images/s (the image tower's forward pass on preprocessed images) and composed
  queries/s (mapping + text tower, the prompt trimmed as the app runs it) at batch 1, 8, 32 and
  128, each precision, median of ``--repeats`` timed rounds after a warm-up, synchronised.

Pure torch + open_clip + ``p2w_search.pic2word`` and the demo's generator (no Django, no
database), so it runs where only torch is installed, as on the GPU machine a session may be
lent. Its image has torch and timm but not open_clip: fetch the wheels here once (into an
ignored folder, ``echo /.whl/ >> .git/info/exclude``)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux2014_x86_64 -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4

then run there, carrying ``.whl`` (one command, about 3 minutes of an H200 expected)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
        PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 -m bench.gpu --out $OUT

and copy ``gpu.json`` and ``gpu.md`` into ``bench/results/``. It also runs on a CPU
(``--device cpu --models demo,ViT-B-32 --batches 1,8 --repeats 2``): a check that it works,
not a measurement. Writes ``gpu.json`` and ``gpu.md`` to ``--out`` (default bench/results).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "shop_demo" / "clip" / "p2w-demo-small.json"
DEMO_WEIGHTS = REPO / "shop_demo" / "clip" / "weights" / "p2w-demo-small.pt"
DEMO_MAPPING = REPO / "shop_demo" / "clip" / "weights" / "p2w-demo-small-mapping.pt"
CHANGES = ("in red", "with stripes", "as a mug", "with a star print", "in yellow with a heart print",
           "make it plain", "the same but orange", "without the print")
PRECISIONS = ("fp32", "fp16", "bf16")
GOAL_COSINE = 0.999


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="demo,ViT-B-32,ViT-L-14",
                        help="'demo' (the shipped CLIP and mapping) and open_clip architecture names (random weights)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default="1,8,32,128")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--fidelity-inputs", type=int, default=16, help="images and changes compared with the CPU")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)

    import torch

    batches = [int(b) for b in args.batches.split(",")]
    rows, fidelity = [], []
    started = time.monotonic()
    for name in args.models.split(","):
        model, preprocess, tokenizer, mapping = load(name)
        images = sample_images(preprocess, max(max(batches), args.fidelity_inputs))  # [n, 3, size, size]
        fidelity += check_fidelity(name, model, tokenizer, mapping, images[:args.fidelity_inputs], args.device)
        rows += measure(name, model, tokenizer, mapping, images, args.device, batches, args.repeats)
        del model, mapping
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    data = {"device": device_name(args.device), "torch": torch.__version__, "batches": batches,
            "repeats": args.repeats, "goal_cosine": GOAL_COSINE, "wall_s": time.monotonic() - started,
            "fidelity": fidelity, "throughput": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "gpu.md").write_text(report(data))
    print(report(data), flush=True)
    failed = [f for f in fidelity if f["min_cosine"] < GOAL_COSINE]
    return 1 if failed else 0


def load(name):
    """``(model, preprocess, tokenizer, mapping)`` in eval mode on the CPU, fp32."""
    import open_clip
    import torch

    from p2w_search import pic2word

    torch.manual_seed(0)
    if name == "demo":
        open_clip.add_model_config(DEMO_CONFIG)
        model, _, preprocess = open_clip.create_model_and_transforms(DEMO_CONFIG.stem, pretrained=str(DEMO_WEIGHTS))
        mapping = pic2word.load_mapping(DEMO_MAPPING)
    else:
        model, _, preprocess = open_clip.create_model_and_transforms(name)
        width = model.token_embedding.weight.shape[1]
        mapping = pic2word.MappingNetwork(embed_dim=model.text_projection.shape[1], output_dim=width)
    tokenizer = open_clip.get_tokenizer(DEMO_CONFIG.stem if name == "demo" else name)
    return model.float().eval(), preprocess, tokenizer, mapping.float().eval()


def sample_images(preprocess, n):
    """``n`` preprocessed images [n, 3, size, size]: the demo generator's products when it imports, else noise."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        from shop_demo.catalog import generator

        photos = [generator.render(p, seed=0) for p in generator.generate_products(n, seed=0)]
    except ImportError:  # the generator needs only numpy and PIL, but keep the check runnable without it
        rng = np.random.default_rng(0)
        photos = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]
    return torch.stack([preprocess(photo) for photo in photos])


def _autocast(device, precision):
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def features(model, tokenizer, mapping, images, changes, device, precision):
    """Image, text and composed features (fp32, normalised) of ``images`` and ``changes`` on ``device``."""
    import torch
    import torch.nn.functional as F

    from p2w_search import pic2word

    model, mapping = model.to(device), mapping.to(device)
    images = images.to(device)
    with torch.inference_mode(), _autocast(device, precision):
        image = model.encode_image(images)
        ids = tokenizer([f"a photo of a product , {c}" for c in changes])
        text = pic2word.encode_text_ids(model, ids)
        composed = pic2word.compose(model, tokenizer, mapping, image.float(), list(changes))
    return {kind: F.normalize(value.float(), dim=-1).cpu() for kind, value in
            (("image", image), ("text", text), ("composed", composed))}


def check_fidelity(name, model, tokenizer, mapping, images, device):
    changes = [CHANGES[i % len(CHANGES)] for i in range(len(images))]
    reference = features(model, tokenizer, mapping, images, changes, "cpu", "fp32")
    rows = []
    for precision in PRECISIONS:
        got = features(model, tokenizer, mapping, images, changes, device, precision)
        for kind in ("image", "text", "composed"):
            cosine = (got[kind] * reference[kind]).sum(dim=-1)  # [n]
            rows.append({"model": name, "precision": precision, "kind": kind, "inputs": len(cosine),
                         "min_cosine": float(cosine.min()), "mean_cosine": float(cosine.mean())})
            print(rows[-1], flush=True)
    model.to("cpu"), mapping.to("cpu")
    return rows


def measure(name, model, tokenizer, mapping, images, device, batches, repeats):
    import torch

    from p2w_search import pic2word

    model, mapping = model.to(device), mapping.to(device)
    rows = []
    for precision in PRECISIONS:
        for batch in batches:
            pixels = images[:batch].to(device)
            stored = torch.randn(batch, model.text_projection.shape[1], device=device)  # a reference's features
            changes = [CHANGES[i % len(CHANGES)] for i in range(batch)]

            def encode_images():
                return model.encode_image(pixels)

            def compose():
                return pic2word.compose(model, tokenizer, mapping, stored, changes)

            with torch.inference_mode(), _autocast(device, precision):
                image_s = _median(encode_images, device, repeats)
                compose_s = _median(compose, device, repeats)
            rows.append({"model": name, "precision": precision, "batch": batch,
                         "images_per_s": batch / image_s, "composed_per_s": batch / compose_s,
                         "image_ms": image_s * 1000, "composed_ms": compose_s * 1000})
            print(rows[-1], flush=True)
    model.to("cpu"), mapping.to("cpu")
    return rows


def _median(function, device, repeats):
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    function()  # warm-up: kernels chosen, memory allocated
    sync()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        sync()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def device_name(device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return device


def report(data):
    lines = [f"# GPU check: {data['device']}, torch {data['torch']}", "",
             f"Fidelity: the smallest cosine between features on the device and CPU fp32 over the same "
             f"inputs (goal at least {data['goal_cosine']}).", "",
             "| model | precision | image | text | composed |", "| --- | --- | ---: | ---: | ---: |"]
    by = {(f["model"], f["precision"], f["kind"]): f["min_cosine"] for f in data["fidelity"]}
    for model in dict.fromkeys(f["model"] for f in data["fidelity"]):
        for precision in PRECISIONS:
            lines.append(f"| {model} | {precision} | " + " | ".join(
                f"{by[model, precision, kind]:.5f}" for kind in ("image", "text", "composed")) + " |")
    lines += ["", f"Throughput: median of {data['repeats']} rounds after a warm-up; the ratio is against fp32 "
              "at the same batch in the same run.", "",
              "| model | precision | batch | images/s | x fp32 | composed queries/s | x fp32 |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    base = {(r["model"], r["batch"]): r for r in data["throughput"] if r["precision"] == "fp32"}
    for r in data["throughput"]:
        b = base[r["model"], r["batch"]]
        lines.append(f"| {r['model']} | {r['precision']} | {r['batch']} | {r['images_per_s']:.1f} | "
                     f"{r['images_per_s'] / b['images_per_s']:.2f} | {r['composed_per_s']:.1f} | "
                     f"{r['composed_per_s'] / b['composed_per_s']:.2f} |")
    lines += ["", f"Whole run: {data['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

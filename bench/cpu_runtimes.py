"""CPU runtimes for the image tower: does ONNX Runtime or OpenVINO make a real CLIP fast enough on CPU?

A shopper's photo query runs the image tower at batch 1; a catalog's ingest at batch 8.
With ViT-B-32 and ViT-L-14 (random weights: the shapes and cost of the released ones), the
image tower (``encode_image``, projection included) is exported once to ONNX (torch's
exporter, a dynamic batch) and run by ONNX Runtime's CPU provider and by OpenVINO (which
reads the ONNX file), against torch eager in the same process with the same threads.
OpenVINO computes in bfloat16 by default on a CPU that has it (AMX, AVX-512 BF16), so it is
also run at fp32, and torch also under bfloat16 autocast: the speed a runtime brings is told
apart from the speed of the precision. All run in turn, round after round, so drift of the
machine hits all of them; each figure is the median over rounds. Every runtime's features
are checked against torch fp32 (cosine).

    bench/run cpu_runtimes --rounds 5
"""

import argparse
import os
import statistics
import time

from bench.report import markdown_table, write_results

NAME = "cpu_runtimes"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ViT-B-32,ViT-L-14", help="open_clip architecture names")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads of every runtime")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    import torch

    from shop_demo.services import var_dir

    torch.set_num_threads(args.threads)
    folder = var_dir() / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        tower, size = image_tower(name)
        path = folder / f"{name}-image.onnx"
        started = time.perf_counter()
        export(tower, size, path)
        export_s = time.perf_counter() - started
        runners = {"torch": torch_runner(tower), "torch bf16 autocast": torch_runner(tower, bfloat16=True),
                   "onnxruntime": onnxruntime_runner(path, args.threads),
                   "openvino (its default: bf16 here)": openvino_runner(path, args.threads),
                   "openvino f32": openvino_runner(path, args.threads, precision="f32")}
        for batch in (int(b) for b in args.batches.split(",")):
            pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
            reference = runners["torch"](pixels)
            cosine = {runtime: min_cosine(reference, run(pixels)) for runtime, run in runners.items()}  # also warms up
            seconds = {runtime: [] for runtime in runners}
            for _ in range(args.rounds):
                for runtime, run in runners.items():
                    started = time.perf_counter()
                    run(pixels)
                    seconds[runtime].append(time.perf_counter() - started)
            base = statistics.median(seconds["torch"])
            for runtime in runners:
                median = statistics.median(seconds[runtime])
                rows.append({"model": name, "batch": batch, "runtime": runtime, "ms": 1000 * median,
                             "images_per_s": batch / median, "x_torch": median / base,
                             "min_cosine": cosine[runtime], "export_s": export_s})
                print(rows[-1], flush=True)
        (folder / f"{name}-image.onnx.data").unlink(missing_ok=True)  # the weights: a GB for ViT-L-14
    table = markdown_table(
        ["model", "batch", "runtime", "ms", "images/s", "**x torch**", "min cosine to torch"],
        [[r["model"], r["batch"], r["runtime"], r["ms"], r["images_per_s"], r["x_torch"], f"{r['min_cosine']:.6f}"]
         for r in rows])
    import openvino

    default_precision = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").to_string()
    write_results(NAME, {"threads": args.threads, "rounds": args.rounds, "load": os.getloadavg(),
                         "openvino_default_precision": default_precision, "rows": rows},
                  f"The image tower at 224 px on CPU, {args.threads} threads for every runtime, median of "
                  f"{args.rounds} rounds (runtimes in turn), random weights; x torch: the time against torch eager "
                  f"in the same round. OpenVINO's default precision on this CPU: {default_precision}. Load average "
                  f"at the end {os.getloadavg()[0]:.1f}.\n\n" + table)


def image_tower(name):
    """``(module, input px)``: ``encode_image`` of architecture ``name`` with random weights."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model(name).eval()

    class ImageTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixels):
            return self.model.encode_image(pixels)

    return ImageTower().eval(), model.visual.image_size[0]


def export(tower, size, path):
    import torch

    example = torch.randn(2, 3, size, size)  # a batch of 1 would fix the batch dimension at 1
    torch.onnx.export(tower, (example,), str(path), input_names=["pixels"], output_names=["features"],
                      dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))


def torch_runner(tower, *, bfloat16=False):
    import torch

    def run(pixels):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            return tower(pixels).float().numpy()

    return run


def onnxruntime_runner(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda pixels: session.run(None, {"pixels": pixels.numpy()})[0]


def openvino_runner(path, threads, *, precision=None):
    """OpenVINO on the CPU; ``precision`` ("f32") overrides its default inference precision."""
    import openvino

    config = {"INFERENCE_NUM_THREADS": threads, **({"INFERENCE_PRECISION_HINT": precision} if precision else {})}
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    return lambda pixels: compiled(pixels.numpy())[0]


def min_cosine(reference, features):
    import numpy as np

    dot = (reference * features).sum(axis=1)
    return float((dot / np.linalg.norm(reference, axis=1) / np.linalg.norm(features, axis=1)).min())


if __name__ == "__main__":
    main()

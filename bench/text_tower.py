"""The text tower run up to the prompt's end against the whole context: time, and that the features agree.

CLIP's text transformer is causal: every position up to the end-of-text token is the same
whether the padding after it is computed or not, so ``pic2word.encode_text_ids`` runs only
the positions up to the longest prompt's end. Measured side by side in one run (the two
ways alternate, median of ``--repeats``): text queries and composed queries at batch 1
and 8 with ViT-B-32 and ViT-L-14 (random weights: the same shapes and cost as the real
ones), and steps/s of the Pic2Word mapping's training (its loss encodes "a photo of *").

    bench/run text_tower --repeats 7
"""

import argparse
import os
import statistics
import time

from bench.report import markdown_table, write_results

NAME = "text_tower"
TEXTS = ["in red", "with a white star print", "as a sneaker", "without the stripes", "in dark blue denim",
         "with polka dots", "a larger one", "in green"]
PROMPT = "a photo of * , {text}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ViT-B-32,ViT-L-14")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts, each measured")
    args = parser.parse_args(argv)
    thread_counts = [int(n) for n in args.threads.split(",")]

    import open_clip
    import torch

    from p2w_search.pic2word import MappingNetwork, compose_text_features, encode_text_ids, mapping_loss

    rows = []
    for name, threads in ((name, threads) for name in args.models.split(",") for threads in thread_counts):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = open_clip.create_model(name).eval()
        tokenizer = open_clip.get_tokenizer(name)
        width = model.token_embedding.embedding_dim
        for batch in (1, 8):
            texts = (TEXTS * batch)[:batch]
            ids = tokenizer(texts)
            tokens = torch.randn(batch, width)
            prompts = [PROMPT.format(text=t) for t in texts]
            with torch.inference_mode():
                full_text, trim_text = encode_text_ids(model, ids, trim=False), encode_text_ids(model, ids)
                full_comp = compose_text_features(model, tokenizer, tokens, prompts, trim=False)
                trim_comp = compose_text_features(model, tokenizer, tokens, prompts)
            timings = alternate({
                "text, whole context": lambda: encode_text_ids(model, ids, trim=False),
                "text, trimmed": lambda: encode_text_ids(model, ids),
                "composed, whole context": lambda: compose_text_features(model, tokenizer, tokens, prompts, trim=False),
                "composed, trimmed": lambda: compose_text_features(model, tokenizer, tokens, prompts),
            }, repeats=args.repeats, inference=True)
            for kind in ("text", "composed"):
                full, trim = timings[f"{kind}, whole context"], timings[f"{kind}, trimmed"]
                diff = float(((full_text - trim_text) if kind == "text" else (full_comp - trim_comp)).abs().max())
                rows.append({"model": name, "threads": threads, "query": kind, "batch": batch,
                             "whole_ms": full * 1000,
                             "trimmed_ms": trim * 1000, "ratio": trim / full, "max_abs_diff": diff,
                             "positions": f"{int(ids.argmax(dim=-1).max()) + 1 if kind == 'text' else '-'} of "
                                          f"{model.context_length}"})
                print(rows[-1], flush=True)
        # The mapping's training step: forward and backward through the text tower, batch 32.
        mapping = MappingNetwork(embed_dim=model.text_projection.shape[1], output_dim=width)
        optimizer = torch.optim.AdamW(mapping.parameters(), lr=1e-4)
        features = torch.randn(32, model.text_projection.shape[1])

        def step(trim):
            def run():
                optimizer.zero_grad()
                loss = mapping_loss(model, tokenizer, mapping, features, trim=trim)
                loss.backward()
                optimizer.step()
            return run

        timings = alternate({"train, whole context": step(False), "train, trimmed": step(True)},
                            repeats=max(3, args.repeats // 2), inference=False)
        full, trim = timings["train, whole context"], timings["train, trimmed"]
        rows.append({"model": name, "threads": threads, "query": "mapping training step", "batch": 32,
                     "whole_ms": full * 1000,
                     "trimmed_ms": trim * 1000, "ratio": trim / full, "max_abs_diff": None,
                     "positions": f"6 of {model.context_length}"})
        print(rows[-1], flush=True)
    table = markdown_table(["model", "threads", "what", "batch", "whole context ms", "trimmed ms", "ratio",
                            "max abs diff", "positions run"],
                           [[r["model"], r["threads"], r["query"], r["batch"], r["whole_ms"], r["trimmed_ms"], r["ratio"],
                             "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}", r["positions"]]
                            for r in rows])
    write_results(NAME, {"threads": thread_counts, "repeats": args.repeats, "load": os.getloadavg(), "rows": rows},
                  "Text tower run up to the longest prompt's end against the whole context, side by side in one "
                  f"run, median of {args.repeats} (training: of {max(3, args.repeats // 2)}), random weights; "
                  f"load average at the end {os.getloadavg()[0]:.1f}. Composed prompts are the paper's template around the change.\n\n"
                  + table)


def alternate(functions, *, repeats, inference):
    """Median seconds of each function, the functions taking turns so load and heat fall on all alike."""
    import torch

    samples = {name: [] for name in functions}
    for function in functions.values():  # one warm-up call each
        with torch.inference_mode(inference):
            function()
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            with torch.inference_mode(inference):
                function()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


if __name__ == "__main__":
    main()

"""Two runs of ``evaluate_demo`` compared query by query on the same catalogs: pooled recall and paired differences.

``evaluate_demo --out DIR`` writes each catalog's triplets (``DIR/cirr/captions/cap.rc2.val.json``)
and every method's ranking of every query (``DIR/cirr-results/rankings.json``). Two runs on the
same catalogs and triplets (two CLIPs, two mappings, or two methods of one run) answer the same
queries, so their difference is measured per query: the catalogs' and the queries' difficulty
cancels, and the standard error of the mean paired difference is much smaller than either
recall's. This is how a demo CLIP is chosen on the validation catalogs (docs/evaluation/levers.md).

    .venv/bin/python -m bench.paired_runs --seeds 1,2,3 \\
        --a 'var/clip-flip/val{seed}/eval' --b 'var/clip-tail/val{seed}/eval' \\
        --method 'pic2word_plus_image[paper]'

Reported, pooled over the seeds' queries: any-correct recall ``R_any@K`` of each side, the mean
paired difference B - A and its standard error, by split (seen, held out) and by change and edit.
``--method-b`` compares another method of B (default: the same as A's).
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np

from p2w_search.evaluation import load_cirr

KS = (1, 10, 50)
CAPTIONS = Path("cirr") / "captions" / "cap.rc2.val.json"
RANKINGS = Path("cirr-results") / "rankings.json"


def first_correct(run, method):
    """Per query of ``run`` (an evaluate_demo output folder): its groups and the rank of its first correct product
    under ``method`` (len(ranking) when none of the ranking is correct)."""
    run = Path(run)
    queries = load_cirr(run / CAPTIONS).queries
    rankings = json.loads((run / RANKINGS).read_text())
    if method not in rankings["top"]:
        raise SystemExit(f"{run / RANKINGS} has no method {method!r}; it has {', '.join(rankings['top'])}")
    rows = []
    for query, asked, top in zip(queries, rankings["queries"], rankings["top"][method], strict=True):
        if (asked["reference"], asked["text"]) != (query.reference, query.text):
            raise SystemExit(f"{run}: the rankings are not of its triplets ({asked} against {query.reference!r}, "
                             f"{query.text!r})")
        rank = next((i for i, product in enumerate(top) if product in query.correct), len(top))
        rows.append((query.groups, rank))
    return rows


def compare(a_rows, b_rows, ks=KS):
    """{group: {K: {"n", "a", "b", "diff", "se"}}} over the queries both sides answered, in the same order.

    Groups: "all", "split=<seen|held-out>", "change=<...>" and "edit=<...>" where the triplets say them."""
    if len(a_rows) != len(b_rows) or any(ga != gb for (ga, _), (gb, _) in zip(a_rows, b_rows, strict=True)):
        raise ValueError("the two runs do not answer the same queries (other catalogs or triplet seeds?)")
    names = {"all": lambda groups: True}
    for key in ("split", "change", "edit"):
        for value in sorted({groups[key] for groups, _ in a_rows if key in groups}):
            names[f"{key}={value}"] = lambda groups, key=key, value=value: groups.get(key) == value
    a_rank = np.array([rank for _, rank in a_rows])
    b_rank = np.array([rank for _, rank in b_rows])
    out = {}
    for name, member in names.items():
        keep = np.array([member(groups) for groups, _ in a_rows], dtype=bool)
        out[name] = {}
        for k in ks:
            a_hit, b_hit = (a_rank[keep] < k).astype(float), (b_rank[keep] < k).astype(float)
            diff = b_hit - a_hit
            n = int(keep.sum())
            out[name][k] = {"n": n, "a": float(a_hit.mean()) if n else 0.0, "b": float(b_hit.mean()) if n else 0.0,
                            "diff": float(diff.mean()) if n else 0.0,
                            "se": float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0}
    return out


def markdown(result, a_label, b_label):
    lines = [f"A: {a_label}", f"B: {b_label}", "",
             "| queries | K | n | A R_any@K | B R_any@K | B - A (se) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, by_k in result.items():
        for k, row in by_k.items():
            lines.append(f"| {name} | {k} | {row['n']} | {row['a']:.3f} | {row['b']:.3f} | "
                         f"{row['diff']:+.3f} ({row['se']:.3f}) |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="run A's evaluate_demo folder, '{seed}' in it")
    parser.add_argument("--b", required=True, help="run B's evaluate_demo folder, '{seed}' in it")
    parser.add_argument("--seeds", default="1,2,3", help="catalog seeds, comma-separated (default: the validation "
                                                         "catalogs 1,2,3)")
    parser.add_argument("--method", default="pic2word_plus_image[paper]", help="the method of A (and of B)")
    parser.add_argument("--method-b", help="B's method, when it is another")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    method_b = args.method_b or args.method
    a_rows = [row for seed in seeds for row in first_correct(args.a.format(seed=seed), args.method)]
    b_rows = [row for seed in seeds for row in first_correct(args.b.format(seed=seed), method_b)]
    result = compare(a_rows, b_rows)
    print(markdown(result, f"{args.method} in {args.a}", f"{method_b} in {args.b}") + f"\n\nseeds {seeds}")
    if args.json:
        Path(args.json).write_text(json.dumps({"a": args.a, "b": args.b, "method_a": args.method,
                                               "method_b": method_b, "seeds": seeds, "result": result}, indent=1))


if __name__ == "__main__":
    main()

"""Mapping training settings, measured on the demo's validation catalogs (never the README's seed 0).

Each configuration is trained by the documented command (``manage.py train_demo_mapping`` with
its options, 2400 steps) and scored by ``manage.py evaluate_demo --seed S --triplet-seed S+1
--prompts paper`` on each validation catalog, with ``P2W_MAPPING`` pointing at the trained file.
Reported: any-correct recall ``R_any@K`` of the shop's default method (``pic2word_plus_image``) and
of the paper's ``pic2word`` (paper prompt, both), CIRR layout, seen and held out, per catalog and
pooled over the catalogs (weighted by queries), with each command's wall time.

Each step runs as its own process under its own embedded services: a validation catalog needs
a database of its own (``load_demo_catalog`` skips SKUs that exist, and every seed uses the same
SKUs). A trained mapping or an evaluation already on disk is reused, so an interrupted run
continues where it stopped.

Run from the repository root (not through ``bench/run``, whose services would be shared):
``P2W_VAR_DIR=$PWD/var/bench-mapping .venv/bin/python -m bench.mapping_training``
(10 to 22 minutes per training and 1 to 3 per evaluation on 2 shared cores).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "shop_demo" / "clip" / "weights" / "p2w-demo-small-mapping.pt"

# name -> (train_demo_mapping options, what it is). None: the shipped mapping, trained with the
# defaults (``train_demo_mapping --steps 2400 --seed 0``, shop_demo/clip/weights/TRAINING.md).
CONFIGS = {
    "default": (None, "the defaults (the shipped mapping): betas 0.9 0.999, eps 1e-8, decay 0.1 on every "
                      "parameter, warm-up 120"),
    "paper": (["--preset", "paper"], "the authors' settings: betas 0.9 0.98, eps 1e-6, decay 0.1 on weights only, "
                                     "warm-up 10000 (never left at 2400 steps)"),
    "paper-warmup120": (["--preset", "paper", "--warmup", "120"],
                        "the authors' optimizer with the default warm-up (2400 // 20)"),
    "default-seed1": (["--seed", "1"], "the defaults with seed 1 (other images, initialisation and batches): "
                                       "the spread of one setting"),
    "default-crops8": (["--crops", "8"], "the defaults on 8 random crops (scale 0.9-1) of each photo, embedded "
                                         "for the purpose: the authors' augmentation, approximated"),
}
VALIDATION_SEEDS = (1, 2, 3)
METHODS = ("pic2word_plus_image", "pic2word")  # the default method, then the paper's: one mapping serves both
COLUMNS = [("split=seen", "R_any@1"), ("split=seen", "R_any@10"), ("split=held-out", "R_any@1"),
           ("split=held-out", "R_any@10")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    parser.add_argument("--seeds", default=",".join(map(str, VALIDATION_SEEDS)), help="validation catalog seeds")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"), help="results folder")
    args = parser.parse_args(argv)
    var = Path(os.environ.get("P2W_VAR_DIR", REPO / "var" / "bench-mapping")).resolve()
    names = args.configs.split(",")
    unknown = set(names) - CONFIGS.keys()
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if 0 in seeds:
        parser.error("seed 0 is the README's benchmark: choose on other seeds")

    results = {"measured": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(),
               "seeds": seeds, "configs": {}}
    for name in names:
        options, about = CONFIGS[name]
        mapping, train_s, resumed = _train(var, name, options)
        row = {"about": about, "command": _train_command_text(options), "train_s": train_s, "resumed": resumed,
               "catalogs": {}}
        for seed in seeds:
            row["catalogs"][seed] = _evaluate(var, name, mapping, seed)
        row["pooled"] = _pooled(row["catalogs"].values())
        results["configs"][name] = row
        _write(Path(args.out), results)  # after every configuration: a long run shows what it has so far
    print((Path(args.out) / "mapping_training.md").read_text())


def _train_command_text(options):
    if options is None:
        return "shipped: manage.py train_demo_mapping --steps 2400 --seed 0"
    return " ".join(["manage.py train_demo_mapping --steps 2400", *options])


def _train(var, name, options):
    """The mapping file of ``name``, the training's wall time (None: not trained here), and whether it was resumed."""
    if options is None:
        return SHIPPED, None, False
    out = var / "mappings" / f"{name}.pt"
    timing = out.with_suffix(".json")
    if out.exists() and timing.exists():
        recorded = json.loads(timing.read_text())
        return out, recorded["wall_s"], recorded.get("resumed", False)
    out.parent.mkdir(parents=True, exist_ok=True)
    resume = ["--resume"] if out.exists() else []
    started = time.monotonic()
    _manage(var / "train", ["train_demo_mapping", "--steps", "2400", "--out", str(out), *options, *resume],
            log=var / "logs" / f"train-{name}.log")
    wall = time.monotonic() - started
    timing.write_text(json.dumps({"wall_s": wall, "resumed": bool(resume), "load": os.getloadavg()}))
    return out, wall, bool(resume)


def _evaluate(var, name, mapping, seed):
    """METHODS' metrics on validation catalog ``seed`` with ``mapping``, and the evaluation's wall time."""
    out = var / f"val{seed}" / f"eval-{name}"
    results = out / "cirr-results" / "results.json"
    timing = out / "wall.json"
    if not (results.exists() and timing.exists()):
        started = time.monotonic()
        _manage(var / f"val{seed}", ["evaluate_demo", "--seed", str(seed), "--triplet-seed", str(seed + 1),
                                     "--prompts", "paper", "--out", str(out)],
                log=var / "logs" / f"eval-{name}-seed{seed}.log", mapping=mapping)
        timing.write_text(json.dumps({"wall_s": time.monotonic() - started, "load": os.getloadavg()}))
    metrics = json.loads(results.read_text())["metrics"]
    return {"n": {group: metrics["pic2word"][group]["n"] for group in ("split=seen", "split=held-out")},
            "metrics": {method: {f"{group} {key}": metrics[method][group][key] for group, key in COLUMNS}
                        for method in METHODS},
            "wall_s": json.loads(timing.read_text())["wall_s"]}


def _manage(var, command, *, log, mapping=None):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["P2W_VAR_DIR"] = str(var)
    if mapping is not None:
        env["P2W_MAPPING"] = str(mapping)
    var.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{datetime.now(UTC):%H:%M:%S} {' '.join(command)} (log: {log})", flush=True)
    with open(log, "w") as handle:
        subprocess.run([sys.executable, "-m", "shop_demo.services", "--", sys.executable, "manage.py", *command],
                       cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, check=True)


def _pooled(catalogs):
    """Recall over the queries of all catalogs (each catalog weighted by its queries)."""
    catalogs = list(catalogs)
    pooled = {method: {} for method in METHODS}
    for method in METHODS:
        for group, key in COLUMNS:
            hits = sum(c["metrics"][method][f"{group} {key}"] * c["n"][group] for c in catalogs)
            pooled[method][f"{group} {key}"] = hits / sum(c["n"][group] for c in catalogs)
    return pooled


def _write(folder, results):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mapping_training.json").write_text(json.dumps(results, indent=1) + "\n")
    (folder / "mapping_training.md").write_text(markdown(results) + "\n")


def markdown(results):
    """The results as the README's tables name them."""
    header = ["seen R_any@1", "seen R_any@10", "held-out R_any@1", "held-out R_any@10"]
    seeds = results["seeds"]
    first = next(iter(results["configs"].values()), None)
    lines = [f"Measured {results['measured']} (commit {results['commit']}), 2-core CPU shared with other jobs.", "",
             "# Mapping training settings on the demo's validation catalogs", "",
             "The default method `pic2word_plus_image` and the paper's `pic2word`, both with the paper prompt and "
             "the same mapping, any-correct recall `R_any@K`, CIRR layout (reference left out). "
             f"Validation catalogs: seeds {', '.join(map(str, seeds))} (triplet seed + 1), never the README's "
             "seed 0. Every mapping: 2400 steps, batch 128, lr 1e-4, 6560 unlabeled images (catalog seed "
             "1000 + training seed, held-out combinations left out)."]
    if first:
        sizes = "; ".join(f"seed {s}: {c['n']['split=seen']} seen, {c['n']['split=held-out']} held out"
                          for s, c in first["catalogs"].items())
        seen, held = (sum(c["n"][group] for c in first["catalogs"].values()) for group in ("split=seen",
                                                                                             "split=held-out"))
        lines += ["", f"Queries: {sizes}. Pooled, one standard error of a recall from the queries alone is at "
                      f"most {math.sqrt(0.25 / seen):.3f} (seen) and {math.sqrt(0.25 / held):.3f} (held out); "
                      "`default-seed1` against `default` shows what another training seed moves."]
    lines += ["", "## Pooled over the validation catalogs", "",
              "| configuration | method | " + " | ".join(header) + " | training (s) |", "| --- | --- |" + " ---: |" * 5]
    for method in METHODS:
        for name, row in results["configs"].items():
            cells = [f"{row['pooled'][method][f'{g} {k}']:.3f}" for g, k in COLUMNS]
            train = "shipped" if row["train_s"] is None else f"{row['train_s']:.0f}"
            if row.get("resumed"):
                train += " (the rest of an interrupted run)"
            lines.append(f"| {name} | `{method}` | " + " | ".join(cells) + f" | {train} |")
    lines += ["", "## Per catalog", "",
              "| configuration | method | catalog | " + " | ".join(header) + " | evaluation (s) |",
              "| --- | --- | --- |" + " ---: |" * 5]
    for method in METHODS:
        for name, row in results["configs"].items():
            for seed, catalog in row["catalogs"].items():
                cells = [f"{catalog['metrics'][method][f'{g} {k}']:.3f}" for g, k in COLUMNS]
                lines.append(f"| {name} | `{method}` | {seed} | " + " | ".join(cells) + f" | {catalog['wall_s']:.0f} |")
    lines += ["", "## Configurations", "", "| configuration | command | what it is |", "| --- | --- | --- |"]
    for name, row in results["configs"].items():
        lines.append(f"| {name} | `{row['command']}` | {row['about']} |")
    return "\n".join(lines)


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()

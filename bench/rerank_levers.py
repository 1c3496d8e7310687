"""Cheap zero-shot levers on top of Pic2Word (issue 12), measured on the demo's validation catalogs.

Nothing is retrained: the shipped demo CLIP and mapping, the paper's ``pic2word`` (prompt
``a photo of * , {text}``) measured in the same run, and these levers beside it:

- ``fusion-w``: a weighted sum, over the whole gallery, of the cosine of each product to the
  pic2word query and to what the query already knows: the change's text alone (``text``, as
  ``text_only`` encodes it), the change in the same sentence with a generic noun in place of
  ``*`` (``generic``: "a photo of a product , in red"), the reference image (``image``) and the
  reference's pseudo-word sentence "a photo of *" (``word``). A weighted sum of cosines is the
  cosine with one weighted query vector, so this costs a few text encodings and no reranking.
- ``rerank-N``: the same weighted sum applied to pic2word's first N products only (the rest keep
  pic2word's order below them): what a shop would run over the candidates the index returns.
- ``ensemble``: the mean of the normalised pic2word queries of several prompt templates, fixed
  before measuring (``ENSEMBLES``).
- ``centred``: the modality gap removed before the cosine: the query minus the mean pseudo-word
  sentence of the catalog's images, each product's vector minus the gallery's mean (both from
  the catalog alone, no triplets), then renormalised.
- ``pic2word_plus_image``: the photo's weight alone (``fusion-w [image]``) on a finer grid, with
  the paper's template and ``bare``: the method the app ships as its default since the CLIP was
  trained longer; then the richest ``fusion-w`` family on a finer grid, paired against it.

Weights are chosen on the validation catalogs only (seeds 1, 2, 3; triplet seed S + 1, exactly
as ``manage.py evaluate_demo --seed S --triplet-seed S+1`` makes them), by leave-one-catalog-out:
for each catalog, the grid point with the best R_any@1 + R_any@10 (all queries) on the other two;
the reported numbers are those of that choice on the left-out catalog, so no number is scored
with weights that saw its queries. The README's seed 0 is never read.

The gallery is rendered and embedded in this process as ``load_demo_catalog`` and
``indexing.embed_pending`` do it (one image per product, the unit vector rounded to float16 as the
``halfvec`` column stores it, times its norm for the mapping), so no database is needed;
``--check`` compares pic2word's metrics here with an ``evaluate_demo`` run's ``results.json``.

Run from the repository root (about 1 minute per catalog for the vectors, cached under
``--var``, then a few minutes for the grids on 2 CPU cores)::

    .venv/bin/python -m bench.rerank_levers --var var/issue12 \
        --check var/train-helper/val{seed}/eval-default/cirr-results/results.json

It writes ``<var>/rerank_levers.json`` and ``<var>/rerank_levers.md`` (the tables of
``docs/evaluation/levers.md``). On the cached vectors: ``--probes`` (quick in-sample probes:
query expansion, hubness correction, text-space gallery, directional score, near-copy penalty, the
change's direction taken out of the photo, what "without ..." names taken out, the reference mirrored,
the levers together, a gallery of two views, each term standardised, a diversified top 10),
``--timing`` (milliseconds per query of each encoding a lever adds), and ``--mapping FILE`` (the
same levers, without weight grids, with another mapping, e.g. one from ``bench.text_mapping``;
the baseline stays the shipped mapping's pic2word).
"""

import argparse
import itertools
import json
import math
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench._vectors import normalise, setup_django

REPO = Path(__file__).resolve().parent.parent
SEEDS = (1, 2, 3)
SIZE = 1000
TEMPLATES = {  # the project's three, and three more written before any measurement
    "paper": "a photo of * , {text}",
    "bare": "* , {text}",
    "but": "a photo of * , but {text}",
    "image": "an image of * , {text}",
    "product": "a product photo of * , {text}",
    "same": "a photo of * , the same but {text}",
}
ENSEMBLES = {
    "ensemble-3": ("paper", "bare", "but"),
    "ensemble-6": tuple(TEMPLATES),
}
GENERIC = "a photo of a product , {text}"
WORD_PROMPT = "a photo of *"
FEATURES = ("text", "generic", "image", "word")
GRID = (-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
IMAGE_GRID = (0.25, 0.375, 0.5, 0.625, 0.75, 1.0)  # the reference photo's weight in pic2word_plus_image
RERANK_N = (20, 50)  # pic2word's first N candidates
KS = (1, 10, 50)


# --- vectors ---------------------------------------------------------------------------------------


def validation_seeds(parser, text):
    """The catalog seeds of ``--seeds``; seed 0, the README's benchmark, is refused."""
    seeds = [int(s) for s in text.split(",")]
    if 0 in seeds:
        parser.error("seed 0 is the README's benchmark: measure on other seeds")
    return seeds


def catalog_vectors(embedder, seed, folder):
    """The catalog's gallery, its CIRR triplets and every query feature of catalog ``seed`` (cached)."""
    from p2w_search import evaluation
    from shop_demo.catalog import generator, triplets

    folder.mkdir(parents=True, exist_ok=True)
    products = generator.generate_products(SIZE, seed=seed)
    rows = triplets.make_triplets(products, seed=seed + 1)
    cirr = triplets.write_cirr(rows, products, folder / "cirr")
    products = sorted(products, key=lambda p: p.sku)
    names = np.array([p.sku for p in products])
    benchmark = evaluation.load_cirr(cirr).resolved(names)
    cache = folder / "vectors.npz"
    if cache.exists():
        data = dict(np.load(cache))
        return benchmark, names, data
    started = time.monotonic()
    from bench._vectors import embed_products

    raw = embed_products(embedder, products, seed=seed)  # [m, dim], as embed_pending computes them
    norms = np.linalg.norm(raw, axis=1).astype(np.float32)
    unit = (raw / norms[:, None]).astype(np.float16).astype(np.float32)  # the halfvec column
    features = unit * norms[:, None]  # Gallery.features: vector * norm
    index = {name: i for i, name in enumerate(names)}
    queries = benchmark.queries
    ref = np.array([index[q.reference] for q in queries])
    texts = [q.text for q in queries]
    data = {"gallery": unit, "ref": ref, "gallery_word": word_features(embedder, features),
            "text": embedder.embed_texts(texts),
            "generic": embedder.embed_texts([GENERIC.format(text=t) for t in texts]),
            "image": normalise(features[ref])}
    data["word"] = data["gallery_word"][ref]
    for name, template in TEMPLATES.items():
        data[f"p2w:{name}"] = embedder.compose(features[ref], texts, template=template)
    np.savez(cache, **data)
    print(f"seed {seed}: vectors in {time.monotonic() - started:.0f} s", flush=True)
    return benchmark, names, data


def word_features(embedder, features):
    """Normalised "a photo of *" sentences of ``features`` [m, dim] (each image's pseudo word)."""
    import torch

    from p2w_search.pic2word import pseudo_word_features

    loaded, mapping = embedder.load(), embedder.mapping()
    out = []
    with torch.inference_mode():
        for start in range(0, len(features), 256):
            chunk = torch.as_tensor(features[start:start + 256], device=loaded.device)
            out.append(pseudo_word_features(loaded.model, loaded.tokenizer, mapping, chunk,
                                            prompt=WORD_PROMPT).float().cpu().numpy())
    return normalise(np.concatenate(out))


# --- scoring ---------------------------------------------------------------------------------------


class Catalog:
    """Score matrices [n, m] of one catalog's queries, the correct sets, and fast recall."""

    def __init__(self, seed, benchmark, names, data):
        self.seed, self.benchmark, self.names, self.data = seed, benchmark, names, data
        n, m = len(benchmark.queries), len(names)
        index = {name: i for i, name in enumerate(names)}
        self.correct = np.zeros((n, m), dtype=bool)
        for i, q in enumerate(benchmark.queries):
            self.correct[i, [index[c] for c in q.correct]] = True
        self.ref = data["ref"]
        self.held = np.array([q.groups.get("split") == "held-out" for q in benchmark.queries])
        self.change = np.array([q.groups.get("change") for q in benchmark.queries])
        self.edit = np.array([q.groups.get("edit") for q in benchmark.queries])
        gallery = data["gallery"]
        self.scores = {key: data[key] @ gallery.T for key in (*FEATURES, *(f"p2w:{t}" for t in TEMPLATES))}
        for name, members in ENSEMBLES.items():
            self.scores[name] = normalise(sum(data[f"p2w:{t}"] for t in members)) @ gallery.T
        centred_gallery = normalise(gallery - gallery.mean(axis=0))
        self.scores["centred"] = normalise(data["p2w:paper"] - data["gallery_word"].mean(axis=0)) @ centred_gallery.T
        self.base = self.scores["p2w:paper"]
        # pic2word's rank of each product (0 = first), the reference left out
        masked = self.base.copy()
        masked[np.arange(n), self.ref] = -np.inf
        order = np.argsort(-masked, axis=1, kind="stable")
        self.base_rank = np.empty_like(order)
        self.base_rank[np.arange(n)[:, None], order] = np.arange(m)[None, :]

    def best_rank(self, scores, rerank=None):
        """Rank [n] of the best-placed correct product (0 = first), the reference left out.

        ``rerank`` N: only pic2word's first N products are reordered by ``scores``; a correct
        product below them keeps its place (at or after N).
        """
        n = len(scores)
        scores = scores.copy()
        scores[np.arange(n), self.ref] = -np.inf
        if rerank is not None:
            inside = self.base_rank < rerank
            scores = np.where(inside, scores, -np.inf)
            correct_inside = self.correct & inside
            best = np.where(correct_inside, scores, -np.inf).max(axis=1)
            ranks = (scores > best[:, None]).sum(axis=1)
            outside = np.where(self.correct, self.base_rank, 10 ** 9).min(axis=1)
            return np.where(correct_inside.any(axis=1), ranks, outside)
        best = np.where(self.correct, scores, -np.inf).max(axis=1)
        return (scores > best[:, None]).sum(axis=1)  # ties count in the correct product's favour

    def rankings(self, scores, rerank=None, top=50):
        """Names of the first ``top`` products per query (stable order), for ``evaluation.report``."""
        n = len(scores)
        scores = scores.astype(np.float64).copy()
        scores[np.arange(n), self.ref] = -np.inf
        if rerank is not None:
            scores = np.where(self.base_rank < rerank, scores + 1e6, -self.base_rank.astype(np.float64))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
        return [list(self.names[row]) for row in order]


def combined(catalog, weights, template="paper"):
    scores = catalog.scores[f"p2w:{template}"].copy()
    for key, weight in zip(FEATURES, weights):
        if weight:
            scores += weight * catalog.scores[key]
    return scores


def hits(ranks, k):
    return (ranks < k).astype(np.float64)


_MEMO = {}


def objective(catalogs, weights, rerank, template="paper"):
    """Mean of R_any@1 + R_any@10 over the queries of ``catalogs`` (each catalog scored once per point)."""
    total, count = 0.0, 0
    for c in catalogs:
        key = (c.seed, weights, rerank, template)
        if key not in _MEMO:
            ranks = c.best_rank(combined(c, weights, template), rerank)
            _MEMO[key] = (hits(ranks, 1).sum() + hits(ranks, 10).sum(), len(ranks))
        total += _MEMO[key][0]
        count += _MEMO[key][1]
    return total / count


def grid_points(features):
    """Weights over FEATURES, the ones not in ``features`` left at 0; ``"tied"``: image a, word -a."""
    if features == "tied":
        return [(0.0, 0.0, a, -a) for a in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)]
    options = [GRID if f in features else (0.0,) for f in FEATURES]
    return list(itertools.product(*options))


def choose(catalogs, points, rerank, template="paper"):
    return max(points, key=lambda w: objective(catalogs, w, rerank, template))


def leave_one_out(catalogs, points, rerank=None, template="paper"):
    """Each catalog's ranks under the point chosen on the other two: (ranks, chosen) by seed."""
    ranks, chosen = {}, {}
    for c in catalogs:
        weights = choose([o for o in catalogs if o is not c], points, rerank, template)
        chosen[c.seed] = dict(zip(FEATURES, weights))
        ranks[c.seed] = c.best_rank(combined(c, weights, template), rerank)
    return ranks, chosen


# --- report ----------------------------------------------------------------------------------------


def summary(rank_by_seed, catalogs, base_by_seed=None):
    """Per catalog and pooled: R_any@1/10/50 seen and held out, and the paired standard error
    of the held-out difference to pic2word (paper prompt)."""
    out = {"catalogs": {}, "pooled": {}}
    pooled = {"seen": [], "held-out": []}
    pooled_base = {"seen": [], "held-out": []}
    for c in catalogs:
        ranks = rank_by_seed[c.seed]
        row = {}
        for split, mask in (("seen", ~c.held), ("held-out", c.held)):
            for k in KS:
                row[f"{split} R_any@{k}"] = float(hits(ranks[mask], k).mean())
            row[f"{split} n"] = int(mask.sum())
            pooled[split].append(ranks[mask])
            if base_by_seed is not None:
                pooled_base[split].append(base_by_seed[c.seed][mask])
        out["catalogs"][c.seed] = row
    for split in ("seen", "held-out"):
        ranks = np.concatenate(pooled[split])
        for k in KS:
            out["pooled"][f"{split} R_any@{k}"] = float(hits(ranks, k).mean())
            if base_by_seed is not None:
                diff = hits(ranks, k) - hits(np.concatenate(pooled_base[split]), k)
                out["pooled"][f"{split} diff@{k}"] = float(diff.mean())
                out["pooled"][f"{split} se@{k}"] = float(diff.std(ddof=1) / math.sqrt(len(diff)))
        out["pooled"][f"{split} n"] = len(ranks)
    return out


def per_change(rank_by_seed, catalogs, k=10):
    out = {}
    for change in ("colour", "pattern", "kind", "print"):
        ranks = np.concatenate([rank_by_seed[c.seed][c.change == change] for c in catalogs])
        out[change] = float(hits(ranks, k).mean())
    return out


def check_against(catalogs, pattern):
    """pic2word here against an evaluate_demo run's results.json (every metric but R_subset, per group)."""
    from p2w_search import evaluation

    worst = 0.0
    for c in catalogs:
        path = Path(pattern.format(seed=c.seed))
        if not path.exists():
            print(f"no {path}: not checked")
            continue
        theirs = json.loads(path.read_text())["metrics"]["pic2word"]
        ours = evaluation.report({"pic2word": c.rankings(c.base)}, c.benchmark)["pic2word"]
        for group, values in theirs.items():
            for key, value in values.items():
                if key.startswith("R_subset"):  # needs the img_set rankings, not compared here
                    continue
                worst = max(worst, abs(value - ours[group][key]))
        print(f"seed {c.seed}: pic2word here against {path}: largest difference {worst:.2e}", flush=True)
    return worst


def timing(embedder, data, rounds=50):
    """Milliseconds per query (batch of one) of what each lever encodes: {name: (min, median)}.

    The calls are interleaved, round after round (after 5 warm-up rounds), so that load from
    other jobs on the machine falls on all of them alike; the minimum is the cost on an idle core.
    """
    features = data["image"][:1] * 10.0
    text = ["make it orange"]
    gallery = data["gallery"]
    candidates = normalise(gallery[:50])
    query = normalise(gallery[:1])
    calls = {
        "pic2word (one template)": lambda: embedder.compose(features, text, template=TEMPLATES["paper"]),
        "text alone": lambda: embedder.embed_texts(text),
        "pseudo-word sentence": lambda: word_features(embedder, features),
        "fusion-w [all four], all it adds: text and generic sentence in one batch, pseudo-word sentence":
            lambda: (embedder.embed_texts([text[0], GENERIC.format(text=text[0])]), word_features(embedder, features)),
        "ensemble-3: three templates in one batch": lambda: embedder.compose(
            np.repeat(features, 3, axis=0), text * 3, template=TEMPLATES["paper"]),
        "rerank 50 candidates (numpy)": lambda: np.argsort(-(candidates @ query.T)[:, 0]),
    }
    times = {name: [] for name in calls}
    for round_ in range(rounds + 5):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            if round_ >= 5:
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: (float(np.min(t)), float(np.median(t))) for name, t in times.items()}


def probes(catalogs, embedder):
    """Quick in-sample probes (settings scored on all three catalogs, so flattered): [(label, pooled)]."""
    out = []
    shipped = np.concatenate([c.best_rank(plus_photo(c, 0.5, None, 0.0))[c.held] for c in catalogs])

    def score(label, make, rerank=None):
        pooled = {}
        ranks = [c.best_rank(make(c), rerank) for c in catalogs]
        for split, rows in (("seen", lambda c: ~c.held), ("held-out", lambda c: c.held),
                            ("held-out removals", lambda c: c.held & (c.edit == "removal"))):
            chosen = np.concatenate([r[rows(c)] for r, c in zip(ranks, catalogs)])
            pooled[split] = (float(hits(chosen, 1).mean()), float(hits(chosen, 10).mean()))
        held = np.concatenate([r[c.held] for r, c in zip(ranks, catalogs)])
        diffs = [hits(held, k) - hits(shipped, k) for k in (1, 10)]  # paired, per held-out query
        pooled["held-out diff to pic2word_plus_image (@1, se, @10, se)"] = tuple(
            float(x) for d in diffs for x in (d.mean(), d.std() / math.sqrt(len(d))))
        out.append((label, pooled))
        d1, se1, d10, se10 = pooled["held-out diff to pic2word_plus_image (@1, se, @10, se)"]
        print(f"{label:44s} seen {pooled['seen'][0]:.3f} {pooled['seen'][1]:.3f}  held-out "
              f"{pooled['held-out'][0]:.3f} {pooled['held-out'][1]:.3f} ({d1:+.3f} se {se1:.3f}, {d10:+.3f} se "
              f"{se10:.3f})  held-out removals {pooled['held-out removals'][0]:.3f} "
              f"{pooled['held-out removals'][1]:.3f}", flush=True)

    for c in catalogs:
        gallery, image = c.data["gallery"], c.data["image"]
        c.scores["text-space"] = c.data["p2w:paper"] @ c.data["gallery_word"].T
        change = normalise(c.data["p2w:paper"] - c.data["word"])
        distance = np.sqrt(np.maximum((gallery * gallery).sum(1)[None, :] + (image * image).sum(1)[:, None]
                                      - 2 * image @ gallery.T, 1e-6))
        c.scores["direction"] = (change @ gallery.T - (change * image).sum(1, keepdims=True)) / distance
    score("pic2word (paper prompt)", lambda c: c.base)
    for k, beta in ((1, 0.25), (3, 0.25), (3, 0.5), (5, 0.25), (10, 0.25)):
        def expanded(c, k=k, beta=beta):
            masked = c.base.copy()
            masked[np.arange(len(masked)), c.ref] = -np.inf
            top = np.argsort(-masked, axis=1)[:, :k]
            return normalise(c.data["p2w:paper"] + beta * normalise(c.data["gallery"][top].mean(axis=1))) \
                @ c.data["gallery"].T
        score(f"query expansion, top {k}, weight {beta}", expanded)
    for k, weight in ((5, 0.5), (10, 0.5), (50, 0.5), (10, 1.0)):
        def csls(c, k=k, weight=weight):
            hubness = np.sort(c.data["gallery"] @ c.data["gallery_word"].T, axis=1)[:, -k:].mean(axis=1)
            return c.base - weight * hubness[None, :]
        score(f"hubness (CSLS-like), k {k}, weight {weight}", csls)
    for weight in (0.25, 0.5, 1.0):
        score(f"+ text-space gallery (P . W_g), weight {weight}",
              lambda c, w=weight: c.base + w * c.scores["text-space"])
    for weight in (0.05, 0.1, 0.2):
        score(f"+ directional, weight {weight}, rerank 50",
              lambda c, w=weight: c.base + w * c.scores["direction"], 50)
    for tau, mu in ((0.8, 1.0), (0.9, 1.0), (0.9, 3.0)):
        score(f"near-copy penalty, cos > {tau}, weight {mu}",
              lambda c, t=tau, m=mu: c.base - m * np.maximum(c.scores["image"] - t, 0))
    for a in (0.25, 0.5, 0.75, 1.0, 1.5):
        score(f"P + {a} (image - word)", lambda c, a=a: c.base + a * (c.scores["image"] - c.scores["word"]))
    for a in (0.5, 0.75):
        score(f"P + {a} I (pic2word_plus_image)", lambda c, a=a: plus_photo(c, a, None, 0.0))
        for direction in ("change", "text"):
            for beta in (1.0, 2.0):
                score(f"P + {a} I, {direction} direction x{beta} taken out",
                      lambda c, a=a, d=direction, b=beta: plus_photo(c, a, d, b))
    # What a change says the target lacks ("without the print"), its text taken out of the query.
    for c in catalogs:
        texts = [q.text for q in c.benchmark.queries]
        negated = [NEGATION.match(text) for text in texts]
        rows = [i for i, match in enumerate(negated) if match]
        c.data["negated"] = np.zeros_like(c.data["image"])
        c.data["negated"][rows] = embedder.embed_texts([negated[i].group(1) for i in rows])
    for v in (0.25, 0.5, 1.0):
        score(f"P + 0.5 I - {v} (what 'without ...' names)", lambda c, v=v: normalise(
            c.data["p2w:paper"] + 0.5 * c.data["image"] - v * c.data["negated"]) @ c.data["gallery"].T)
    # Test-time augmentation: the reference photo mirrored (one more image encoding a query), its
    # pseudo word averaged in. The gallery keeps one view, as the index does.
    for c in catalogs:
        c.data["mirrored"] = mirrored_features(embedder, c)
        # The mean direction of the two views, at the mirrored photo's norm (the cache keeps the unit vectors only).
        both = normalise(c.data["image"] + normalise(c.data["mirrored"])) * np.linalg.norm(
            c.data["mirrored"], axis=1, keepdims=True)
        texts = [q.text for q in c.benchmark.queries]
        c.data["p2w:mirrored"] = embedder.compose(c.data["mirrored"], texts, template=TEMPLATES["paper"])
        c.data["p2w:both views"] = embedder.compose(both, texts, template=TEMPLATES["paper"])
    for name in ("mirrored", "both views"):
        for a in (0.375, 0.5):
            score(f"mean of P and P ({name}) + {a} I", lambda c, n=name, a=a: normalise(
                normalise(c.data["p2w:paper"] + c.data[f"p2w:{n}"]) + a * c.data["image"]) @ c.data["gallery"].T)
    # The levers together, which one at a time did not clear the bar on R_any@10: both views' queries,
    # the photo weighted higher and the reference's pseudo-word sentence taken out (fusion-w's "word").
    def both(c):
        return normalise(c.data["p2w:paper"] + c.data["p2w:both views"])

    for a, w in ((0.5, -0.25), (0.625, -0.25), (0.625, -0.5)):
        score(f"mean of P and P (both views) + {a} I - {-w} W", lambda c, a=a, w=w: normalise(
            both(c) + a * c.data["image"] + w * c.data["word"]) @ c.data["gallery"].T)
    # Two views in the gallery as well (one more image encoding a product, at index time): each product
    # the mean direction of its photo and the photo mirrored; the reference's photo is its gallery vector.
    for c in catalogs:
        products = sorted(generator_products(c.seed), key=lambda p: p.sku)
        c.data["gallery two views"] = normalise(c.data["gallery"] + normalise(mirrored_features(embedder, c, products)))
    for a in (0.375, 0.5):
        score(f"two-view gallery: P + {a} I", lambda c, a=a: normalise(
            c.data["p2w:paper"] + a * c.data["gallery two views"][c.ref]) @ c.data["gallery two views"].T)
        score(f"two-view gallery: mean of P and P (both views) + {a} I", lambda c, a=a: normalise(
            both(c) + a * c.data["gallery two views"][c.ref]) @ c.data["gallery two views"].T)
    # Each term standardised over the gallery, per query, before it is weighted: a weight that would mean
    # the same for a CLIP whose photo-to-photo cosines spread wider than its text-to-photo ones. Still one
    # vector search: z(P . g) + a z(I . g) ranks as (P / sd_P + a I / sd_I) . g.
    for c in catalogs:
        c.scores["z:p2w"], c.scores["z:image"] = (standardised(normalise(c.data["p2w:paper"]) @ c.data["gallery"].T),
                                                  standardised(c.scores["image"]))
        spread = [float((normalise(c.data["p2w:paper"]) @ c.data["gallery"].T).std(1).mean()),
                  float(c.scores["image"].std(1).mean())]
        print(f"seed {c.seed}: spread over the gallery, pic2word {spread[0]:.3f}, photo {spread[1]:.3f}")
    for a in (0.4, 0.5):
        score(f"z(P) + {a} z(I), each standardised", lambda c, a=a: c.scores["z:p2w"] + a * c.scores["z:image"])
    # The text-space gallery again, on top of the shipped query: each product's own pseudo-word sentence
    # beside its photo (one more text encoding a product, at index time).
    for weight in (0.1, 0.25, 0.5):
        score(f"P + 0.5 I, + {weight} P . W_g (text-space gallery)", lambda c, w=weight: plus_photo(c, 0.5, None, 0.0)
              + w * normalise(c.data["p2w:paper"]) @ c.data["gallery_word"].T)
    # The photo weighted per query so that every query sits at one angle from the reference photo, where
    # a fixed weight leaves queries whose words took them far from the photo far from it.
    for target in (0.6, 0.65, 0.7, 0.72, 0.75, 0.8):
        score(f"P + a I, a per query: cos(query, I) = {target}",
              lambda c, t=target: at_fixed_cosine(c, t, share=1.0) @ c.data["gallery"].T)
    for share in (0.25, 0.5):
        score(f"P + a I, a {share} x the cos 0.75 one + {1 - share} x 0.5",
              lambda c, s=share: at_fixed_cosine(c, 0.75, share=s) @ c.data["gallery"].T)
    # A top 10 with fewer near-copies (maximal marginal relevance over the first 50): the first answer
    # stays; any-correct recall at 10 gains if the misses were crowded out by look-alikes.
    for lam in (0.9, 0.8, 0.7):
        score(f"P + 0.5 I, top 10 diversified (MMR, lambda {lam})",
              lambda c, lam=lam: diversified(c, plus_photo(c, 0.5, None, 0.0), lam))
    return out


def standardised(scores):
    """``scores`` [n, m] less each row's mean, over its standard deviation."""
    return (scores - scores.mean(axis=1, keepdims=True)) / scores.std(axis=1, keepdims=True)


def at_fixed_cosine(catalog, target, *, share):
    """Queries [n, dim] ``P + a I`` with ``a`` per query: ``share`` of the weight that puts the query at
    cosine ``target`` from the reference photo ``I`` (0 where ``P`` is already that close), plus
    ``1 - share`` of the shipped 0.5.

    With p = cos(P, I) for unit P and I, cos(P + a I, I) = (p + a) / sqrt(1 + 2ap + a^2), which
    equals t at a = t sqrt((1 - p^2) / (1 - t^2)) - p.
    """
    pic2word, photo = normalise(catalog.data["p2w:paper"]), catalog.data["image"]
    p = (pic2word * photo).sum(axis=1)
    exact = np.maximum(target * np.sqrt((1 - p ** 2) / (1 - target ** 2)) - p, 0.0)
    return normalise(pic2word + (share * exact + (1 - share) * 0.5)[:, None] * photo)


def diversified(catalog, scores, lam, top=50, k=10):
    """``scores`` [n, m] with each query's first ``k`` among its ``top`` reordered by maximal marginal
    relevance: each next product maximises lam * score - (1 - lam) * its highest cosine to those chosen.
    The reference is left out; the rest of the first ``top`` follow in score order, then all others."""
    n = len(scores)
    scores = scores.copy()
    scores[np.arange(n), catalog.ref] = -np.inf
    out = scores.copy()
    gallery = catalog.data["gallery"]
    for i, candidates in enumerate(np.argsort(-scores, axis=1)[:, :top]):
        relevance, similar = scores[i, candidates], gallery[candidates] @ gallery[candidates].T
        chosen = [0]
        while len(chosen) < k:
            value = lam * relevance - (1 - lam) * similar[:, chosen].max(axis=1)
            value[chosen] = -np.inf
            chosen.append(int(np.argmax(value)))
        rest = [j for j in range(top) if j not in chosen]
        out[i, candidates[chosen]] = 2e6 - np.arange(k)  # above every score, in the chosen order
        out[i, candidates[rest]] = 1e6 + relevance[rest]
    return out


def generator_products(seed):
    from shop_demo.catalog import generator

    return generator.generate_products(SIZE, seed=seed)


def mirrored_features(embedder, catalog, products=None):
    """Raw image features [n, dim] of each query's reference photo mirrored left to right, or of
    each of ``products`` when given."""
    from PIL import ImageOps

    from shop_demo.catalog import generator

    if products is None:
        by_sku = {p.sku: p for p in generator_products(catalog.seed)}
        products = [by_sku[name] for name in catalog.names[catalog.ref]]
    photos = [ImageOps.mirror(generator.render(p, seed=catalog.seed, variant=0)) for p in products]
    return embedder.embed_images(photos, normalize=False)


# "without the print", "remove the print", "with no print": the words after the cue name what the target lacks.
NEGATION = re.compile(r"^(?:.*?\b)?(?:without|remove|with no|no)\s+(.+)$")


def change_direction(data, kind):
    """Unit vector [n, dim] of what the words change: ``change`` the pic2word sentence minus the
    reference's own pseudo-word sentence ("a photo of *"), ``text`` the change's text alone."""
    if kind == "change":
        return normalise(data["p2w:paper"] - data["word"])
    return data["text"]


def plus_photo(catalog, a, direction, beta, template="paper"):
    """Scores of P + a photo, the photo's component along the change's direction scaled by 1 - beta."""
    photo = catalog.data["image"]
    if direction is not None:
        d = change_direction(catalog.data, direction)
        photo = normalise(photo - beta * (photo * d).sum(1, keepdims=True) * d)
    return normalise(catalog.data[f"p2w:{template}"] + a * photo) @ catalog.data["gallery"].T


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--var", default=str(REPO / "var" / "issue12"))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--check", default=None, help="an evaluate_demo results.json per seed, '{seed}' in the path")
    parser.add_argument("--probes", action="store_true", help="only the quick in-sample probes (cached vectors)")
    parser.add_argument("--timing", action="store_true", help="only the cost per query (cached vectors)")
    parser.add_argument("--mapping", default=None, help="score this mapping instead of the shipped one (vectors "
                                                        "under <var>/mapping-<name>/, no weight grids)")
    args = parser.parse_args(argv)
    seeds = validation_seeds(parser, args.seeds)
    setup_django()
    from p2w_search.embedders import get_embedder

    var = Path(args.var)
    if args.mapping:
        from django.conf import settings

        from p2w_search.embedders.openclip import OpenCLIPEmbedder

        embedder = OpenCLIPEmbedder("default", {**settings.P2W_SEARCH["EMBEDDERS"]["default"],
                                                "MAPPING": args.mapping})
        var = var / f"mapping-{Path(args.mapping).stem}"
    else:
        embedder = get_embedder("default")
    catalogs = []
    for seed in seeds:
        benchmark, names, data = catalog_vectors(embedder, seed, var / f"val{seed}")
        catalogs.append(Catalog(seed, benchmark, names, data))
    if args.timing:
        costs = timing(embedder, catalogs[0].data)
        (var / "timing.json").write_text(json.dumps(costs, indent=1) + "\n")
        for name, (low, median) in costs.items():
            print(f"{name}: min {low:.2f} ms, median {median:.2f} ms")
        return
    if args.probes:
        rows = probes(catalogs, embedder)
        (var / "probes.json").write_text(json.dumps(rows, indent=1) + "\n")
        return
    results = {"measured": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "seeds": seeds, "levers": {}}
    if args.check:
        results["check_largest_difference"] = check_against(catalogs, args.check)

    def record(name, about, ranks, extra=None):
        results["levers"][name] = {"about": about, **summary(ranks, catalogs, base),
                                   "change R_any@10": per_change(ranks, catalogs), **(extra or {})}
        p = results["levers"][name]["pooled"]
        print(f"{name:32s} seen {p['seen R_any@1']:.3f} {p['seen R_any@10']:.3f}  held-out "
              f"{p['held-out R_any@1']:.3f} {p['held-out R_any@10']:.3f}", flush=True)

    if args.mapping:  # the baseline stays the paper's method with the shipped mapping (its cached vectors)
        shipped = [Catalog(c.seed, *catalog_vectors(None, c.seed, Path(args.var) / f"val{c.seed}")[:2],
                           dict(np.load(Path(args.var) / f"val{c.seed}" / "vectors.npz"))) for c in catalogs]
        base = {c.seed: c.best_rank(c.base) for c in shipped}
        record("pic2word (paper prompt), shipped mapping", "the paper's method, as shipped", base)
        record(f"pic2word (paper prompt), {Path(args.mapping).name}", "the paper's method with this mapping",
               {c.seed: c.best_rank(c.base) for c in catalogs})
    else:
        base = {c.seed: c.best_rank(c.base) for c in catalogs}
        record("pic2word (paper prompt)", "the paper's method, as shipped", base)
    for name, template in TEMPLATES.items():
        if name != "paper":
            record(f"pic2word, prompt {name}", template, {c.seed: c.best_rank(c.scores[f"p2w:{name}"])
                                                                 for c in catalogs})
    for name, members in ENSEMBLES.items():
        record(name, "mean of " + ", ".join(members), {c.seed: c.best_rank(c.scores[name]) for c in catalogs})
    record("centred", "modality gap removed (catalog means)", {c.seed: c.best_rank(c.scores["centred"])
                                                                for c in catalogs})
    record("fusion (ours, shipped)", "pic2word + image_plus_text, normalised", {
        c.seed: c.best_rank(c.scores["p2w:paper"] + normalise(c.data["image"] + c.data["text"]) @ c.data["gallery"].T)
        for c in catalogs})

    families = {"text": ("text",), "generic": ("generic",), "image": ("image",), "word": ("word",),
                "text+image": ("text", "image"), "image-word tied": "tied",
                "generic+image+word": ("generic", "image", "word"),
                "all four": FEATURES}
    for rerank in () if args.mapping else (None, *RERANK_N):
        for family, features in families.items():
            points = grid_points(features)
            ranks, chosen = leave_one_out(catalogs, points, rerank)
            everywhere = choose(catalogs, points, rerank)
            label = ("fusion-w" if rerank is None else f"rerank-{rerank}") + f" [{family}]"
            record(label, "weights chosen leave-one-catalog-out", ranks,
                   {"weights by left-out catalog": chosen,
                    "weights on all three": dict(zip(FEATURES, everywhere))})
    if args.mapping:
        a = 0.5  # the tied weight chosen on the shipped mapping's grid, not re-chosen here
        record(f"fusion-w [image-word tied], a = {a}", "P + a (image - word), a fixed", {
            c.seed: c.best_rank(combined(c, (0.0, 0.0, a, -a))) for c in catalogs})
        photo = (0.0, 0.0, embedder.image_weight, 0.0)  # pic2word_plus_image at the configured weight
        plus_image = {c.seed: c.best_rank(combined(c, photo)) for c in shipped}
        record("pic2word_plus_image, shipped mapping", f"P + {photo[2]} I, the shipped default", plus_image)
        record(f"pic2word_plus_image, {Path(args.mapping).name}", f"P + {photo[2]} I with this mapping",
               {c.seed: c.best_rank(combined(c, photo)) for c in catalogs})
        # Two mappings as one: the mean of their Pic2Word queries (two text encodings a query), then the photo.
        both = {c.seed: c.best_rank((normalise(s.data["p2w:paper"] + c.data["p2w:paper"]) + photo[2] * c.data["image"])
                                    @ c.data["gallery"].T) for c, s in zip(catalogs, shipped)}
        name = f"pic2word_plus_image, mean of the shipped mapping's and {Path(args.mapping).name}'s queries"
        record(name, f"normalise(P_shipped + P) + {photo[2]} I", both)
        results["levers"][f"{name}, against pic2word_plus_image"] = {
            "about": "paired differences to pic2word_plus_image (shipped mapping), not to pic2word",
            **summary(both, catalogs, plus_image), "change R_any@10": per_change(both, catalogs)}
    else:
        # pic2word_plus_image, the method this page led to: the reference photo's weight alone, on a
        # finer grid, with two templates; then the richest family against it, paired.
        photo_only = [(0.0, 0.0, a, 0.0) for a in IMAGE_GRID]
        for template in ("paper", "bare"):
            ranks, chosen = leave_one_out(catalogs, photo_only, template=template)
            record(f"pic2word_plus_image, prompt {template}", "P + a I, a chosen leave-one-catalog-out", ranks,
                   {"weights by left-out catalog": chosen,
                    "weights on all three": dict(zip(FEATURES, choose(catalogs, photo_only, None, template)))})
            if template == "paper":
                plus_image = ranks
        richer = [(t, g, a, w) for t in (0.25, 0.5, 0.75) for g in (-0.25, -0.5, -0.75)
                  for a in (0.5, 0.75, 1.0) for w in (-0.25, -0.5, -0.75)]
        ranks, chosen = leave_one_out(catalogs, richer)
        results["levers"]["fusion-w [all four], a finer grid, against pic2word_plus_image"] = {
            "about": "paired differences to pic2word_plus_image (paper prompt), not to pic2word",
            **summary(ranks, catalogs, plus_image), "change R_any@10": per_change(ranks, catalogs),
            "weights by left-out catalog": chosen}
        results["ms per query"] = timing(embedder, catalogs[0].data)
    var.mkdir(parents=True, exist_ok=True)
    (var / "rerank_levers.json").write_text(json.dumps(results, indent=1) + "\n")
    (var / "rerank_levers.md").write_text(markdown(results) + "\n")
    print(markdown(results))


def markdown(results):
    lines = [f"Measured {results['measured']}; validation catalogs {results['seeds']} (triplet seed + 1).", "",
             ("| lever | seen R_any@1 | seen R_any@10 | held-out R_any@1 | held-out R_any@10 | held-out R_any@50 | "
              "held-out diff@1 (se) | held-out diff@10 (se) | colour | pattern | kind | print |"),
             "| --- |" + " ---: |" * 11]
    for name, row in results["levers"].items():
        p, ch = row["pooled"], row["change R_any@10"]
        lines.append(f"| {name} | {p['seen R_any@1']:.3f} | {p['seen R_any@10']:.3f} | {p['held-out R_any@1']:.3f} | "
                     f"{p['held-out R_any@10']:.3f} | {p['held-out R_any@50']:.3f} | "
                     f"{p['held-out diff@1']:+.3f} ({p['held-out se@1']:.3f}) | "
                     f"{p['held-out diff@10']:+.3f} ({p['held-out se@10']:.3f}) | "
                     + " | ".join(f"{ch[c]:.3f}" for c in ("colour", "pattern", "kind", "print")) + " |")
    lines += ["", "Per catalog (R_any@1 / R_any@10):", "", "| lever | " + " | ".join(
        f"seed {s} seen | seed {s} held out" for s in results["seeds"]) + " |",
        "| --- |" + " ---: |" * (2 * len(results["seeds"]))]
    for name, row in results["levers"].items():
        cells = []
        for s in results["seeds"]:
            r = row["catalogs"][s] if s in row["catalogs"] else row["catalogs"][str(s)]
            cells += [f"{r['seen R_any@1']:.3f} / {r['seen R_any@10']:.3f}",
                      f"{r['held-out R_any@1']:.3f} / {r['held-out R_any@10']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Weights (text, generic, image, word) on all three catalogs:", ""]
    for name, row in results["levers"].items():
        if "weights on all three" in row:
            lines.append(f"- {name}: {row['weights on all three']}; by left-out catalog "
                         f"{row['weights by left-out catalog']}")
    if "ms per query" in results:
        lines += ["", "Milliseconds per query (batch of one, 50 interleaved rounds, 2 shared cores): min, median", ""]
        lines += [f"- {k}: {v[0]:.2f}, {v[1]:.2f}" for k, v in results["ms per query"].items()]
    if "check_largest_difference" in results:
        lines += ["", (f"pic2word here against evaluate_demo's results.json: largest difference "
                       f"{results['check_largest_difference']:.2e}")]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

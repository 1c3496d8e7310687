"""Evaluate composed retrieval over the indexed gallery: every metric per method, JSON, markdown, PNG."""

import json
from pathlib import Path

import numpy as np
from django.apps import apps
from django.core.exceptions import FieldError
from django.core.management.base import BaseCommand, CommandError

from p2w_search import evaluation, ranking_metrics
from p2w_search.composition import METHODS, PROMPTED, composed_queries, plus_image
from p2w_search.conf import app_settings, product_model_label
from p2w_search.indexing import embedder_for
from p2w_search.management.model_choice import chosen_model
from p2w_search.models import ImageEmbedding

RANKED = max(ranking_metrics.KS)  # rankings.json keeps this many products per query


class Command(BaseCommand):
    help = ("Composed retrieval on CIRR- or FashionIQ-layout triplets: the paper's Recall@K (one target), "
            "any-correct recall, CIRCO's mAP@K and CIRR's Recall_subset@K.")

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--fashioniq", help="Folder of cap.<category>.<split>.json files (or the dataset's "
                                                "root, with json/ and image_splits/).")
        source.add_argument("--cirr", help="A cap.rc2.<split>.json file (its split.rc2.<split>.json is looked for "
                                           "beside it and in ../image_splits/).")
        parser.add_argument("--split", default=None,
                            help="FashionIQ split (val, test, ...) when the folder has several.")
        parser.add_argument("--id-field", default="pk", help="Product field the triplets' identifiers name.")
        parser.add_argument("--methods", default=",".join(METHODS))
        parser.add_argument("--prompts", default=None,
                            help="Pic2Word prompt names (P2W_SEARCH['PROMPTS']), comma-separated; default: PROMPT.")
        parser.add_argument("--image-weights", default=None,
                            help="IMAGE_WEIGHT values to score pic2word_plus_image at, comma-separated (e.g. "
                                 "0,0.25,0.5,0.75,1); names the one that scores best. Default: the model's own.")
        parser.add_argument("--model", type=int, help="EmbeddingModel id (default: the serving model).")
        parser.add_argument("--out", default="evaluation",
                            help="Folder for results.json, results.md, rankings.json, examples.png.")
        parser.add_argument("--examples", type=int, default=8, help="Queries drawn in examples.png.")

    def handle(self, *, fashioniq, cirr, split, id_field, methods, prompts, image_weights, model, out, examples,
               **options):
        if examples < 0:
            raise CommandError(f"--examples: must be at least 0, not {examples}")
        runs = list(_runs(methods.split(","), (prompts or app_settings.PROMPT).split(","), _weights(image_weights)))
        target = chosen_model(model)
        gallery = Gallery.load(target, id_field)
        try:
            loaded = evaluation.load_fashioniq(fashioniq, split=split) if fashioniq else evaluation.load_cirr(cirr)
            benchmark = loaded.resolved(gallery.product_names)
        except (OSError, ValueError) as error:
            raise CommandError(str(error)) from None
        queries = benchmark.queries
        if not queries:
            raise CommandError(f"--fashioniq: no triplets in {fashioniq}" if fashioniq else
                               f"--cirr: {cirr} holds no triplets")
        for name, source in benchmark.sources.items():
            self.stdout.write(f"gallery {name}: {len(benchmark.galleries[name])} products from {source}")
        embedder = embedder_for(target)
        features = np.stack([gallery.features(q.reference) for q in queries])  # [n, dim], raw
        texts = [q.text for q in queries]

        rankings, subsets, pic2word = {}, {}, {}
        for label, method, template_name, weight in runs:
            self.stdout.write(f"ranking {len(queries)} queries with {label} ...")
            template = app_settings.PROMPTS[template_name] if template_name else None
            if weight is None:
                vectors = composed_queries(embedder, image_features=features, texts=texts, method=method,
                                           template=template)
            else:  # one encoding of the pic2word queries per prompt, whatever the number of weights
                if template_name not in pic2word:
                    pic2word[template_name] = composed_queries(embedder, image_features=features, texts=texts,
                                                               method="pic2word", template=template)
                vectors = plus_image(pic2word[template_name], features, weight)
            rankings[label], subsets[label] = evaluation.rank_benchmark(
                vectors, benchmark, gallery.vectors, gallery.product_names, top=RANKED)
        result = evaluation.report(rankings, benchmark, subsets)
        best = _best_weight(runs, result, benchmark.headline)

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        measured = {key.split("@")[0] for key in next(iter(result.values()))["all"]}
        names = {key: text for key, text in ranking_metrics.DEFINITIONS.items() if key.split("@")[0] in measured}
        (folder / "results.json").write_text(json.dumps({
            "model": target.key, "layout": benchmark.layout, "queries": len(queries),
            "paper_figure": benchmark.headline, "metric_names": names,
            "galleries": {name: {"source": benchmark.sources[name], "products": len(products)}
                          for name, products in benchmark.galleries.items()},
            "metrics": result, **({"image_weight": best} if best else {})}, indent=1))
        # The top products of every query (in its gallery, reference left out where the benchmark
        # does), so anyone can recompute the metrics, or study what the wrong answers share.
        (folder / "rankings.json").write_text(json.dumps({
            "queries": [{"reference": q.reference, "text": q.text, "target": q.target, "gallery": q.gallery}
                        for q in queries],
            "top": {method: ranked for method, ranked in rankings.items()},
            **({"subset": subsets} if any(q.subset for q in queries) else {}),
        }))
        groups = sorted({g for r in result.values() for g in r})
        markdown = "\n\n".join(f"**{g}**" + (" (the paper's figure)" if g == benchmark.headline else "")
                                 + f"\n\n{evaluation.markdown_table(result, group=g)}" for g in groups)
        legend = "\n".join(f"- `{key}`: {text}" for key, text in names.items())
        (folder / "results.md").write_text(
            f"Model: `{target.key}`, {len(queries)} queries, {benchmark.layout} layout\n\n{legend}\n\n{markdown}\n")
        if examples:
            from p2w_search.evaluation_grid import draw_examples

            first = next(iter(rankings))
            draw_examples(queries[:examples], rankings[first][:examples], gallery, folder / "examples.png",
                          title=first)
        self.stdout.write(evaluation.markdown_table(result, group=benchmark.headline))
        if best:
            weight = f"{best['weight']:g}"
            self.stdout.write(
                f"IMAGE_WEIGHT {weight} scored best of {', '.join(best['scores'])} on these triplets "
                f"({best['by']}: {best['scores'][weight]:.3f}); to search with it, set "
                f"P2W_SEARCH['EMBEDDERS'][{embedder.alias!r}]['IMAGE_WEIGHT'] = {weight}")
        self.stdout.write(self.style.SUCCESS(f"wrote {folder}/results.json, results.md, rankings.json"
                                             + (", examples.png" if examples else "")))


def _weights(text):
    """The ``--image-weights`` values, or None; CommandError naming the option and the reason."""
    if text is None:
        return None
    weights = []
    for part in text.split(","):
        try:
            weight = float(part)
        except ValueError:
            raise CommandError(f"--image-weights: {part.strip()!r} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise CommandError(f"--image-weights: {part.strip()} is not a finite number of at least 0")
        weights.append(weight)
    return list(dict.fromkeys(weights))


def _runs(methods, prompts, weights=None):
    """(label, method, prompt name, image weight) for each run.

    A prompted method runs once per prompt when several are given, and pic2word_plus_image once
    per weight when ``weights`` are given (None: the model's own ``IMAGE_WEIGHT``).
    """
    if weights and "pic2word_plus_image" not in methods:
        raise CommandError("--image-weights: only pic2word_plus_image has an image weight; add it to --methods")
    for method in methods:
        if method not in METHODS:
            raise CommandError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        if method not in PROMPTED:
            yield method, method, None, None
            continue
        for prompt in prompts:
            if prompt not in app_settings.PROMPTS:
                raise CommandError(f"unknown prompt {prompt!r}; P2W_SEARCH['PROMPTS'] has "
                                   f"{', '.join(app_settings.PROMPTS)}")
            tags = [prompt] if len(prompts) > 1 else []
            for weight in (weights if weights and method == "pic2word_plus_image" else [None]):
                label_tags = tags + ([f"w={weight:g}"] if weight is not None else [])
                yield (f"{method}[{','.join(label_tags)}]" if label_tags else method), method, prompt, weight


def _best_weight(runs, result, group):
    """The weight whose pic2word_plus_image scored best (any-correct R@1 + R@10 of ``group``), or None.

    With several prompts, each weight counts at the prompt it scored best with. Ties go to the
    smaller weight: the one nearer the paper's method.
    """
    by = ("R_any@1", "R_any@10")
    scores = {}
    for label, method, _, weight in runs:
        if weight is not None:
            score = sum(result[label][group][key] for key in by)
            scores[weight] = max(score, scores.get(weight, score))
    if not scores:
        return None
    best = max(sorted(scores), key=lambda w: scores[w])
    return {"weight": best, "by": f"{' + '.join(by)} ({group})", "scores": {f"{w:g}": scores[w] for w in scores}}


class Gallery:
    """The ready embeddings of one model: vectors [m, dim], their products, and the products' names."""

    def __init__(self, rows, names):
        self.image_ids = np.array([r[0] for r in rows])
        self.products = np.array([r[1] for r in rows])
        self.vectors = np.array([r[2] for r in rows], dtype=np.float32)
        self.norms = np.array([r[3] for r in rows], dtype=np.float32)
        self.names = names  # product pk -> identifier used by the triplets
        self.reference_ids = {name: pk for pk, name in names.items()}
        self.product_names = np.array([names[p] for p in self.products])  # [m]
        self._first = {}
        for i, product in enumerate(self.products):  # rows come ordered by image position
            self._first.setdefault(product, i)

    @classmethod
    def load(cls, model, id_field):
        rows = list(
            ImageEmbedding.objects.filter(model=model, state=ImageEmbedding.State.READY)
            .order_by("image__product_id", "image__position", "image_id")
            .values_list("image_id", "image__product_id", "vector", "norm")
        )
        if not rows:
            raise CommandError(f"{model.key} has no embedded images")
        product_model = apps.get_model(product_model_label())
        try:
            names = {pk: str(name) for pk, name in product_model._default_manager.values_list("pk", id_field)}
        except FieldError as exc:  # "Cannot resolve keyword 'x' into field. Choices are: ..."
            raise CommandError(f"--id-field {id_field!r}: {exc}") from None
        return cls(rows, names)

    def features(self, reference):
        """Raw image features of the reference product's first image."""
        i = self._first[self.reference_ids[reference]]
        return self.vectors[i] * self.norms[i]

    def image_of(self, name):
        """ProductImage id of the first image of the product called ``name``."""
        return int(self.image_ids[self._first[self.reference_ids[name]]])

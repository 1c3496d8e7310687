"""Evaluate composed retrieval over the indexed gallery: every metric per method, JSON, markdown, PNG."""

import json
from pathlib import Path

import numpy as np
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from p2w_search import evaluation, ranking_metrics
from p2w_search.composition import METHODS, PROMPTED, composed_queries
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
        parser.add_argument("--model", type=int, help="EmbeddingModel id (default: the serving model).")
        parser.add_argument("--out", default="evaluation", help="Folder for results.json, results.md, rankings.json, examples.png.")
        parser.add_argument("--examples", type=int, default=8, help="Queries drawn in examples.png.")

    def handle(self, *, fashioniq, cirr, split, id_field, methods, prompts, model, out, examples, **options):
        target = chosen_model(model)
        gallery = Gallery.load(target, id_field)
        try:
            loaded = evaluation.load_fashioniq(fashioniq, split=split) if fashioniq else evaluation.load_cirr(cirr)
            benchmark = loaded.resolved(gallery.product_names)
        except (OSError, ValueError) as error:
            raise CommandError(str(error)) from None
        queries = benchmark.queries
        for name, source in benchmark.sources.items():
            self.stdout.write(f"gallery {name}: {len(benchmark.galleries[name])} products from {source}")
        embedder = embedder_for(target)
        features = np.stack([gallery.features(q.reference) for q in queries])  # [n, dim], raw
        texts = [q.text for q in queries]

        rankings, subsets = {}, {}
        for method, template_name in _runs(methods.split(","), (prompts or app_settings.PROMPT).split(",")):
            self.stdout.write(f"ranking {len(queries)} queries with {method} ...")
            vectors = composed_queries(embedder, image_features=features, texts=texts, method=method.split("[")[0],
                                       template=app_settings.PROMPTS[template_name] if template_name else None)
            rankings[method], subsets[method] = evaluation.rank_benchmark(
                vectors, benchmark, gallery.vectors, gallery.product_names, top=RANKED)
        result = evaluation.report(rankings, benchmark, subsets)

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        measured = {key.split("@")[0] for key in next(iter(result.values()))["all"]}
        names = {key: text for key, text in ranking_metrics.DEFINITIONS.items() if key.split("@")[0] in measured}
        (folder / "results.json").write_text(json.dumps({
            "model": target.key, "layout": benchmark.layout, "queries": len(queries),
            "paper_figure": benchmark.headline, "metric_names": names,
            "galleries": {name: {"source": benchmark.sources[name], "products": len(products)}
                          for name, products in benchmark.galleries.items()},
            "metrics": result}, indent=1))
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
        self.stdout.write(self.style.SUCCESS(f"wrote {folder}/results.json, results.md, rankings.json"
                                             + (", examples.png" if examples else "")))


def _runs(methods, prompts):
    """(label, prompt name) for each method; a prompted method once per prompt when several are given."""
    for method in methods:
        if method not in METHODS:
            raise CommandError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        if method not in PROMPTED:
            yield method, None
            continue
        for prompt in prompts:
            if prompt not in app_settings.PROMPTS:
                raise CommandError(f"unknown prompt {prompt!r}; P2W_SEARCH['PROMPTS'] has {', '.join(app_settings.PROMPTS)}")
            yield (f"{method}[{prompt}]" if len(prompts) > 1 else method), prompt


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
        names = {pk: str(name) for pk, name in product_model._default_manager.values_list("pk", id_field)}
        return cls(rows, names)

    def features(self, reference):
        """Raw image features of the reference product's first image."""
        i = self._first[self.reference_ids[reference]]
        return self.vectors[i] * self.norms[i]

    def image_of(self, name):
        """ProductImage id of the first image of the product called ``name``."""
        return int(self.image_ids[self._first[self.reference_ids[name]]])

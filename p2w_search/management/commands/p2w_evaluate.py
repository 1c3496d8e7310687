"""Evaluate composed retrieval over the indexed gallery: Recall@K per method, JSON, markdown, PNG."""

import json
from pathlib import Path

import numpy as np
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from p2w_search import evaluation
from p2w_search.composition import METHODS, PROMPTED, composed_queries
from p2w_search.conf import app_settings, product_model_label
from p2w_search.indexing import embedder_for
from p2w_search.management.models import chosen_model
from p2w_search.models import ImageEmbedding


class Command(BaseCommand):
    help = "Recall@1/5/10/50 of composed retrieval on FashionIQ- or CIRR-layout triplets."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--fashioniq", help="Folder of cap.<category>.<split>.json files.")
        source.add_argument("--cirr", help="A cap.rc2.<split>.json file.")
        parser.add_argument("--id-field", default="pk", help="Product field the triplets' identifiers name.")
        parser.add_argument("--methods", default=",".join(METHODS))
        parser.add_argument("--prompts", default=None,
                            help="Pic2Word prompt names (P2W_SEARCH['PROMPTS']), comma-separated; default: PROMPT.")
        parser.add_argument("--model", type=int, help="EmbeddingModel id (default: the serving model).")
        parser.add_argument("--out", default="evaluation", help="Folder for results.json, results.md, rankings.json, examples.png.")
        parser.add_argument("--examples", type=int, default=8, help="Queries drawn in examples.png.")

    def handle(self, *, fashioniq, cirr, id_field, methods, prompts, model, out, examples, **options):
        queries = evaluation.load_fashioniq(fashioniq) if fashioniq else evaluation.load_cirr(cirr)
        target = chosen_model(model)
        embedder = embedder_for(target)
        gallery = Gallery.load(target, id_field)
        missing = {q.reference for q in queries} - gallery.reference_ids.keys()
        if missing:
            raise CommandError(f"{len(missing)} references are not in the indexed gallery, e.g. {sorted(missing)[:3]}")
        features = np.stack([gallery.features(q.reference) for q in queries])  # [n, dim], raw
        texts = [q.text for q in queries]
        exclude = [gallery.reference_ids[q.reference] if q.exclude_reference else None for q in queries]

        rankings = {}
        for method, template_name in _runs(methods.split(","), (prompts or app_settings.PROMPT).split(",")):
            self.stdout.write(f"ranking {len(queries)} queries with {method} ...")
            vectors = composed_queries(embedder, image_features=features, texts=texts, method=method.split("[")[0],
                                       template=app_settings.PROMPTS[template_name] if template_name else None)
            ranked = evaluation.rank_products(vectors, gallery.vectors, gallery.products, exclude=exclude)
            rankings[method] = [[gallery.names[p] for p in row] for row in ranked]
        result = evaluation.report(rankings, queries)

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps({"model": target.key, "queries": len(queries),
                                                          "recall": result}, indent=1))
        # The top 10 of every query, for analyses beyond recall (what the wrong answers have in common).
        (folder / "rankings.json").write_text(json.dumps({
            "queries": [{"reference": q.reference, "text": q.text} for q in queries],
            "top10": {method: [row[:10] for row in ranked] for method, ranked in rankings.items()},
        }))
        groups = sorted({g for r in result.values() for g in r})
        markdown = "\n\n".join(f"**{g}**\n\n{evaluation.markdown_table(result, group=g)}" for g in groups)
        (folder / "results.md").write_text(f"Model: `{target.key}`, {len(queries)} queries\n\n{markdown}\n")
        if examples:
            from p2w_search.evaluation_grid import draw_examples

            first = next(iter(rankings))
            draw_examples(queries[:examples], rankings[first][:examples], gallery, folder / "examples.png",
                          title=first)
        self.stdout.write(evaluation.markdown_table(result))
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

"""Measure how a second change composes with the first ("in red", then "with stripes") on the demo catalog.

Loads and embeds the demo catalog if needed (in this process, no workers, as evaluate_demo),
draws two-change triplets (``chained.make_chained_triplets``), ranks them with every way of
chaining (``chained.CHAINS``) under each method, and writes ``results.json`` and
``summary.md`` (the README's table) to ``--out``.
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from p2w_search import indexing
from p2w_search.composition import METHODS
from p2w_search.indexing import embedder_for
from p2w_search.management.commands.p2w_evaluate import Gallery
from p2w_search.management.model_choice import chosen_model
from p2w_search.models import ImageEmbedding
from shop_demo.catalog import chained, generator


class Command(BaseCommand):
    help = "Two-change triplets on the demo catalog: recall of each way to chain a second change, per method."

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=1000, help="Products in the demo catalog.")
        parser.add_argument("--seed", type=int, default=0, help="Catalog seed (the demo's is 0).")
        parser.add_argument("--triplet-seed", type=int, default=1)
        parser.add_argument("--per-product", type=int, default=2, help="Two-change triplets per reference.")
        parser.add_argument("--methods", default="pic2word_plus_image,pic2word,fusion,image_plus_text")
        parser.add_argument("--out", default=None, help="Folder for the results (default var/eval-chained).")

    def handle(self, *, size, seed, triplet_seed, per_product, methods, out, **options):
        methods = methods.split(",")
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise CommandError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
        out = Path(out or Path(settings.VAR_DIR) / "eval-chained")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("load_demo_catalog", size=size, seed=seed, exact=True)
        products = generator.generate_products(size, seed=seed)
        model = indexing.register_model()
        indexing.queue_missing(model)
        pending = list(model.embeddings.filter(state=ImageEmbedding.State.PENDING).values_list("pk", flat=True))
        for start in range(0, len(pending), 256):
            indexing.embed_pending(model.pk, pending[start:start + 256])
        target = chosen_model(None)
        gallery = Gallery.load(target, "sku")
        embedder = embedder_for(target)
        attributes = {p.sku: p.attributes for p in products}
        triplets = chained.make_chained_triplets(products, seed=triplet_seed, per_product=per_product)
        held = sum(t.held_out for t in triplets)
        self.stdout.write(f"{len(triplets)} two-change triplets ({held} with a held-out target)")
        results = {}
        for method in methods:
            results[method] = {}
            for chain in chained.CHAINS:
                rankings, _ = chained.chained_rankings(embedder, triplets, gallery, chain=chain, method=method)
                results[method][chain] = chained.measure(rankings, triplets, attributes)
                row = results[method][chain]["all"]
                self.stdout.write(f"{method} {chain}: R_any@1 {row['R_any@1']:.3f}, R_any@10 {row['R_any@10']:.3f}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps({
            "model": target.key, "size": size, "seed": seed, "triplet_seed": triplet_seed,
            "per_product": per_product, "triplets": len(triplets), "held_out": held, "metrics": results}, indent=1))
        summary = "\n\n".join(f"**{group}**\n\n{chained.markdown(results, group=group)}"
                              for group in ("all", "seen", "held-out"))
        (out / "summary.md").write_text(summary + "\n")
        self.stdout.write(f"\n{summary}\nwrote {out}/results.json and summary.md")

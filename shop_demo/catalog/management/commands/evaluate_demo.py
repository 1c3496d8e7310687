"""Evaluate composed retrieval on the demo catalog: triplets with known answers, all methods.

Loads and embeds the demo catalog if needed (in this process, no workers), writes the
triplets in the FashionIQ and CIRR layouts, runs ``p2w_evaluate`` on both, and writes
``diagnosis.md``: which attributes the methods' first answers (CIRR run) got right or lost.
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from p2w_search import indexing
from p2w_search.models import ImageEmbedding
from shop_demo.catalog import diagnosis, generator, triplets


class Command(BaseCommand):
    help = "Write demo triplets (FashionIQ and CIRR layouts) and report Recall@K of every method."

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=1000, help="Products in the demo catalog.")
        parser.add_argument("--seed", type=int, default=0, help="Catalog seed (the demo's is 0).")
        parser.add_argument("--triplet-seed", type=int, default=1)
        parser.add_argument("--out", default=None, help="Folder for triplets and results (default var/eval).")
        parser.add_argument("--prompts", default=",".join(settings.P2W_SEARCH.get("PROMPTS", {"paper": ""})))

    def handle(self, *, size, seed, triplet_seed, out, prompts, **options):
        out = Path(out or Path(settings.VAR_DIR) / "eval")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("load_demo_catalog", size=size, seed=seed)
        model = indexing.register_model()
        indexing.queue_missing(model)  # tasks are sent after commit; embedding here makes them no-ops
        pending = list(model.embeddings.filter(state=ImageEmbedding.State.PENDING).values_list("pk", flat=True))
        for start in range(0, len(pending), 256):
            indexing.embed_pending(model.pk, pending[start:start + 256])
        products = generator.generate_products(size, seed=seed)
        rows = triplets.make_triplets(products, seed=triplet_seed)
        triplets.write_fashioniq(rows, out / "fashioniq")
        cirr = triplets.write_cirr(rows, out / "cirr")
        held = sum(t.held_out for t in rows)
        self.stdout.write(f"{len(rows)} triplets ({held} with a held-out target) in {out}")
        call_command("p2w_evaluate", cirr=str(cirr), id_field="sku", prompts=prompts, out=str(out / "cirr-results"))
        call_command("p2w_evaluate", fashioniq=str(out / "fashioniq"), id_field="sku", prompts=prompts,
                     out=str(out / "fashioniq-results"), examples=0)
        summary = _summary(json.loads((out / "cirr-results" / "results.json").read_text())["recall"])
        (out / "summary.md").write_text(summary + "\n")
        self.stdout.write(f"\n{summary}\nwrote {out}/summary.md")
        self._diagnose(rows, products, out)

    def _diagnose(self, rows, products, out):
        ranked = json.loads((out / "cirr-results" / "rankings.json").read_text())
        attributes = {p.sku: p.attributes for p in products}
        by_method = {method: diagnosis.diagnose(rows, [top[0] for top in tops], attributes)
                     for method, tops in ranked["top10"].items()}
        (out / "diagnosis.json").write_text(json.dumps(by_method, indent=1))
        text = "\n\n".join(f"**change: {group}**\n\n{diagnosis.markdown(by_method, group=group)}"
                            for group in diagnosis.groups())
        (out / "diagnosis.md").write_text(
            "Share of top-1 answers (CIRR run) that carry the requested change, and that keep each of "
            f"the reference's other attributes.\n\n{text}\n")
        self.stdout.write(f"\n{diagnosis.markdown(by_method, group='all')}\nwrote {out}/diagnosis.md")


def _summary(recall):
    """The README's table: R@1/10/50 seen and held-out, and R@10 per change, one row per method."""
    splits = [("seen", "split=seen"), ("held-out", "split=held-out")]
    changes = [f"change={c}" for c in triplets.CHANGES]
    header = ([f"{name} R@{k}" for name, _ in splits for k in (1, 10, 50)]
              + [f"{c.split('=')[1]} R@10" for c in changes])
    lines = ["| method | " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(header)]
    for method, groups in recall.items():
        cells = [groups[g][f"R@{k}"] for _, g in splits for k in (1, 10, 50)] + [groups[c]["R@10"] for c in changes]
        lines.append(f"| {method} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
    n = {name: recall[next(iter(recall))][g]["n"] for name, g in splits}
    return "\n".join(lines) + f"\n\n{n['seen']} seen and {n['held-out']} held-out queries (CIRR layout)."

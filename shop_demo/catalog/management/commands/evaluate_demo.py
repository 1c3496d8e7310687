"""Evaluate composed retrieval on the demo catalog: triplets with known answers, all methods.

Loads and embeds the demo catalog if needed (in this process, no workers), writes the
triplets in the official CIRR and FashionIQ layouts (with each product's image, as the
authors' loaders expect), runs ``p2w_evaluate`` on both, and writes ``summary.md`` (the
README's tables) and ``diagnosis.md``: which attributes the methods' first answers (CIRR
run) got right or lost.
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from PIL import Image

from p2w_search import indexing
from p2w_search.models import ImageEmbedding, ProductImage
from shop_demo.catalog import diagnosis, generator, triplets


class Command(BaseCommand):
    help = "Write demo triplets (CIRR and FashionIQ layouts) and report every metric of every method."

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=1000, help="Products in the demo catalog.")
        parser.add_argument("--seed", type=int, default=0, help="Catalog seed (the demo's is 0).")
        parser.add_argument("--triplet-seed", type=int, default=1)
        parser.add_argument("--out", default=None, help="Folder for triplets and results (default var/eval).")
        parser.add_argument("--prompts", default=",".join(settings.P2W_SEARCH.get("PROMPTS", {"paper": ""})))

    def handle(self, *, size, seed, triplet_seed, out, prompts, **options):
        out = Path(out or Path(settings.VAR_DIR) / "eval")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("load_demo_catalog", size=size, seed=seed, exact=True)
        products = generator.generate_products(size, seed=seed)
        model = indexing.register_model()
        indexing.queue_missing(model)  # tasks are sent after commit; embedding here makes them no-ops
        pending = list(model.embeddings.filter(state=ImageEmbedding.State.PENDING).values_list("pk", flat=True))
        for start in range(0, len(pending), 256):
            indexing.embed_pending(model.pk, pending[start:start + 256])
        rows = triplets.make_triplets(products, seed=triplet_seed)
        cirr = triplets.write_cirr(rows, products, out / "cirr")
        triplets.write_fashioniq(rows, products, out / "fashion-iq")
        _export_images((out / "cirr" / "dev", out / "fashion-iq" / "images"))
        held = sum(t.held_out for t in rows)
        self.stdout.write(f"{len(rows)} triplets ({held} with a held-out target) in {out}")
        call_command("p2w_evaluate", cirr=str(cirr), id_field="sku", prompts=prompts, out=str(out / "cirr-results"))
        call_command("p2w_evaluate", fashioniq=str(out / "fashion-iq"), split="val", id_field="sku", prompts=prompts,
                     out=str(out / "fashioniq-results"), examples=0)
        summary = _summary(*(json.loads((out / f"{name}-results" / "results.json").read_text())
                             for name in ("cirr", "fashioniq")))
        (out / "summary.md").write_text(summary + "\n")
        self.stdout.write(f"\n{summary}\nwrote {out}/summary.md")
        self._diagnose(rows, products, out)

    def _diagnose(self, rows, products, out):
        ranked = json.loads((out / "cirr-results" / "rankings.json").read_text())
        attributes = {p.sku: p.attributes for p in products}
        by_method = {method: diagnosis.diagnose(rows, [top[0] for top in tops], attributes)
                     for method, tops in ranked["top"].items()}
        (out / "diagnosis.json").write_text(json.dumps(by_method, indent=1))
        text = "\n\n".join(f"**change: {group}**\n\n{diagnosis.markdown(by_method, group=group)}"
                            for group in diagnosis.groups())
        (out / "diagnosis.md").write_text(
            "Share of top-1 answers (CIRR run) that carry the requested change, and that keep each of "
            f"the reference's other attributes.\n\n{text}\n")
        self.stdout.write(f"\n{diagnosis.markdown(by_method, group='all')}\nwrote {out}/diagnosis.md")


def _export_images(folders):
    """Write each product's first image as ``<sku>.png`` into each folder: the authors' loaders open them."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    seen = set()
    for image in ProductImage.objects.select_related("product").order_by("product_id", "position", "id"):
        sku = image.product.sku
        if sku in seen:
            continue
        seen.add(sku)
        with image.file.open("rb") as handle:
            picture = Image.open(handle).convert("RGB")
            for folder in folders:
                picture.save(folder / f"{sku}.png")


def _summary(cirr, fashioniq):
    """The README's tables: any-correct recall by split and change; every other metric beside it."""
    recall = cirr["metrics"]
    splits = [("seen", "split=seen"), ("held-out", "split=held-out")]
    changes = [f"change={c}" for c in triplets.CHANGES] + [f"edit={e}" for e in triplets.EDITS]
    header = ([f"{name} R_any@{k}" for name, _ in splits for k in (1, 10, 50)]
              + [f"{c.split('=')[1]} R_any@10" for c in changes])
    lines = ["Any-correct recall `R_any@K` (a hit: any product with exactly the asked attributes among the K "
             "best), CIRR layout (reference left out):", "",
             "| method | " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(header)]
    for method, groups in recall.items():
        cells = ([groups[g][f"R_any@{k}"] for _, g in splits for k in (1, 10, 50)]
                 + [groups[c]["R_any@10"] for c in changes])
        lines.append(f"| {method} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
    n = {name: recall[next(iter(recall))][g]["n"] for name, g in [*splits, *((c, c) for c in changes)]}
    lines += ["", f"{n['seen']} seen and {n['held-out']} held-out queries (CIRR layout); by what the change does: "
              + ", ".join(f"{n[f'edit={e}']} {e}s" for e in triplets.EDITS) + ".", ""]

    columns = [("all", "R_any@1"), ("all", "R_any@10"), ("all", "R@1"), ("all", "R@10"), ("all", "R@50"),
               ("split=held-out", "R@1"), ("split=held-out", "R@10"), ("all", "mAP@10"), ("all", "R_subset@1")]
    fiq = fashioniq["metrics"]
    header = ([("held-out " if g != "all" else "") + key for g, key in columns]
              + ["FIQ R@10", "FIQ R@50", "FIQ R_any@10"])
    lines += [f"Every metric, CIRR layout ({cirr['queries']} queries; `R@K` counts `target_hard` only), and the "
              f"FashionIQ layout ({fashioniq['queries']} triplets without kind changes, each kind ranked in its "
              "own gallery with the reference kept; mean over kinds):", "",
              "| method | " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(header)]
    for method, groups in recall.items():
        cells = ([groups[g][key] for g, key in columns]
                 + [fiq[method]["category-mean"][key] for key in ("R@10", "R@50", "R_any@10")])
        lines.append(f"| {method} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
    return "\n".join(lines)

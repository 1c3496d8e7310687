"""Evaluate composed retrieval on the demo catalog: triplets with known answers, all methods.

Loads and embeds the demo catalog if needed (in this process, no workers), writes the
triplets in the FashionIQ and CIRR layouts, and runs ``p2w_evaluate`` on both.
"""

from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from p2w_search import indexing
from p2w_search.models import ImageEmbedding
from shop_demo.catalog import generator, triplets


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
        rows = triplets.make_triplets(generator.generate_products(size, seed=seed), seed=triplet_seed)
        triplets.write_fashioniq(rows, out / "fashioniq")
        cirr = triplets.write_cirr(rows, out / "cirr")
        held = sum(t.held_out for t in rows)
        self.stdout.write(f"{len(rows)} triplets ({held} with a held-out target) in {out}")
        call_command("p2w_evaluate", cirr=str(cirr), id_field="sku", prompts=prompts, out=str(out / "cirr-results"))
        call_command("p2w_evaluate", fashioniq=str(out / "fashioniq"), id_field="sku", prompts=prompts,
                     out=str(out / "fashioniq-results"), examples=0)

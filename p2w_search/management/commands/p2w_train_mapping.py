"""Train the Pic2Word mapping on the shop's own catalog images (no captions, no triplets)."""

import numpy as np
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from p2w_search.embedders import DEFAULT_ALIAS
from p2w_search.indexing import embedder_for
from p2w_search.management.model_choice import chosen_model
from p2w_search.models import ImageEmbedding
from p2w_search.pic2word import MappingMismatch
from p2w_search.training import (
    ResumeError,
    add_training_options,
    check_training_options,
    describe_settings,
    fit_mapping,
    settings_from_options,
)


class Command(BaseCommand):
    help = ("Train a Pic2Word mapping for a model's CLIP on the catalog's embedded images; "
            "point P2W_SEARCH['EMBEDDERS'][alias]['MAPPING'] at the file it writes.")

    def add_arguments(self, parser):
        parser.add_argument("--model", type=int, help="EmbeddingModel id (default: the serving model).")
        parser.add_argument("--out", required=True, help="Checkpoint to write.")
        parser.add_argument("--steps", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--resume", action="store_true",
                            help="Continue the unfinished run in --out (with the settings it was started with).")
        add_training_options(parser)  # --preset, --batch-size (default 64 here), --lr, --betas, ...

    def handle(self, *, model, out, steps, seed, resume, **options):
        settings = settings_from_options(options, batch_size=64)
        check_training_options(steps=steps, settings=settings, out=out, resume=resume)
        target = chosen_model(model)
        # The image tower is frozen, so the stored embeddings are the features: vector * norm.
        # In a fixed order: batches are drawn by position, so a resumed run must see the same list.
        rows = target.embeddings.filter(state=ImageEmbedding.State.READY).order_by("pk").values_list("vector", "norm")
        features = np.array([np.asarray(vector, dtype=np.float32) * norm for vector, norm in rows.iterator()])
        if len(features) < 2:
            raise CommandError(f"{target.key} has {len(features)} embedded images; train on at least a batch")
        embedder = embedder_for(target)
        self.stdout.write(f"training a mapping for {target.key} on {len(features)} images")
        self.stdout.write(describe_settings(settings, steps=steps))
        with tqdm(total=steps, desc="pic2word mapping", unit="step") as bar:
            def progress(step, loss):
                bar.n = step + 1
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                bar.refresh()
            try:
                result = fit_mapping(embedder, features, out=out, steps=steps, seed=seed, resume=resume,
                                     progress=progress, **settings)
            except ResumeError as error:
                raise CommandError(str(error)) from error
            except MappingMismatch as error:  # only a resumed checkpoint is loaded
                raise CommandError(f"--resume: {out}: {error}") from error
        alias = target.alias or DEFAULT_ALIAS
        self.stdout.write(self.style.SUCCESS(
            f"wrote {out} (final loss {result['losses'][-1]:.3f}); set P2W_SEARCH['EMBEDDERS'][{alias!r}]"
            f"['MAPPING'] to it" if result["losses"] else f"{out} was already complete"))

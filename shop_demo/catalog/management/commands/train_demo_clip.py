"""Train the demo shop's small CLIP on the synthetic catalogue and save it as an fp16 checkpoint.

Needs no database: it only renders products, trains (``shop_demo.clip.training``) and writes
files.  Besides ``--out`` it writes a float32 training state with the optimizer (``--state``)
that ``--resume`` continues from, also after ``--minutes`` stopped a run early.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from shop_demo import services
from shop_demo.catalog import generator

CLIP_DIR = Path(__file__).resolve().parents[3] / "clip"
EVAL_PRODUCTS, EVAL_CATALOG_SEED = 2000, 1  # evaluation photos: another catalogue, unseen variants


class Command(BaseCommand):
    help = "Train the demo CLIP (open_clip, ClipLoss) on rendered catalogue photos and captions."
    requires_system_checks = []  # the app's checks talk to the database, which training never needs

    def add_arguments(self, parser):
        parser.add_argument("--steps", type=int, default=5400, help="The shipped CLIP: 5400.")
        parser.add_argument("--batch-size", type=int, default=128)
        parser.add_argument("--lr", type=float, default=5e-4)
        parser.add_argument("--warmup", type=int, default=50, help="Linear warm-up steps before cosine decay.")
        parser.add_argument("--weight-decay", type=float, default=0.1)
        parser.add_argument("--catalog-size", type=int, default=5000,
                            help="Products drawn (held-out ones are dropped).")
        parser.add_argument("--pool-size", type=int, default=60000, help="Photos rendered once and sampled from.")
        parser.add_argument("--patch-dropout", type=float, default=0.5,
                            help="Fraction of the photo's patches each step leaves out (FLIP); 0 keeps all.")
        parser.add_argument("--unmasked-steps", type=int,
                            help="Last steps that see every patch (default: a tenth of --steps).")
        parser.add_argument("--minutes", type=float,
                            help="Time budget for rendering and training; then save and stop.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--config", type=Path, default=CLIP_DIR / "p2w-demo-small.json",
                            help="open_clip architecture JSON; the model name is the file's stem.")
        parser.add_argument("--out", type=Path, default=CLIP_DIR / "weights" / "p2w-demo-small.pt")
        parser.add_argument("--state", type=Path,
                            help="Training state file (default: var/models/<out stem>.state.pt).")
        parser.add_argument("--resume", type=Path, help="Training state file to continue from.")
        parser.add_argument("--eval-products", type=int, default=EVAL_PRODUCTS)

    def handle(self, *, steps, batch_size, lr, warmup, weight_decay, catalog_size, pool_size, patch_dropout,
               unmasked_steps, minutes, seed, config, out, state, resume, eval_products, **options):
        from shop_demo.clip.training import attribute_accuracy, save_checkpoint, save_training_state, train_clip

        if resume and not resume.is_file():
            raise CommandError(f"--resume: {resume} does not exist")
        if unmasked_steps is None:
            unmasked_steps = steps // 10 if patch_dropout else 0
        state = state or services.var_dir() / "models" / f"{out.stem}.state.pt"
        bars = {}

        def progress(stage, done, total, **info):
            if stage not in bars:
                rendering = stage == "render"
                bars[stage] = tqdm(total=total, desc="rendering photos" if rendering else "training",
                                   unit="photo" if rendering else "step")
            bar = bars[stage]
            bar.update(done - bar.n)
            if stage == "render" and done == total:
                bar.close()  # training starts next; a closed bar stops its clock
            if info:
                bar.set_postfix(loss=f"{info['loss']:.3f}", img_s=f"{info['images_per_s']:.0f}",
                                lr=f"{info['lr']:.1e}", refresh=False)

        result = train_clip(model_name=config.stem, config_path=config, steps=steps, batch_size=batch_size, lr=lr,
                            warmup=warmup, weight_decay=weight_decay, seed=seed, catalog_size=catalog_size,
                            pool_size=pool_size, patch_dropout=patch_dropout, unmasked_steps=unmasked_steps,
                            progress=progress, resume=resume,
                            time_limit_s=minutes * 60 if minutes else None)
        for bar in bars.values():
            bar.close()
        losses = result["losses"]
        final_loss = sum(losses[-50:]) / len(losses[-50:]) if losses else float("nan")
        save_training_state(result, state)
        save_checkpoint(result["model"], out, extra={"model_name": config.stem, "step": result["step"],
                                                     "hparams": result["hparams"], "final_loss": final_loss})
        ending = "stopped by --minutes at" if result["stopped_early"] else "finished"
        self.stdout.write(
            f"{ending} step {result['step']}/{steps} in {result['seconds']:.0f} s "
            f"(photo pool {result['render_seconds']:.0f} s, "
            f"training {result['train_seconds']:.0f} s, {result['images_per_s']:.0f} img/s); "
            f"final loss {final_loss:.3f} (mean of the last {min(50, len(losses))} steps)")

        products = generator.generate_products(eval_products, seed=EVAL_CATALOG_SEED)
        report = attribute_accuracy(result["model"], result["tokenizer"], result["preprocess"], products, seed=seed)
        for group, scores in report.items():
            if scores["n"]:
                accuracies = ", ".join(f"{name} {scores[name]:.3f}" for name in ("kind", "colour", "pattern", "all"))
                self.stdout.write(f"zero-shot accuracy, {group.replace('_', '-')} combinations "
                                  f"(n={scores['n']}): {accuracies}")
        self.stdout.write(self.style.SUCCESS(
            f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, fp16); resume state {state}"))

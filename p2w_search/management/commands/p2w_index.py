"""Manage the index from the command line: status, doctor, embed, wait, sweep, switch."""

import time

from django.core import checks
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from p2w_search import indexing, rates, serving, status, sweeping
from p2w_search.conf import app_settings
from p2w_search.embedders import DEFAULT_ALIAS, InvalidEmbedderError
from p2w_search.management.model_choice import chosen_model
from p2w_search.management.terminal import shown
from p2w_search.models import ProductImage
from p2w_search.rates import duration_text

# Seconds between two readings of the embedding rate while `wait` polls (the rate query reads a model's rows).
RATE_EVERY = 5.0
# Headings of doctor's output, as manage.py check groups its messages: (lowest level, highest level + 1, title).
LEVELS = [(checks.ERROR, 100, "ERRORS"), (checks.WARNING, checks.ERROR, "WARNINGS"), (0, checks.WARNING, "INFOS")]


class Command(BaseCommand):
    help = "Manage the image index: status | doctor | embed | wait | sweep | sync | switch."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="Counts by model and state, rates, workers, search health, what is wrong.")
        sub.add_parser("doctor", help="What is wrong, with ids like system checks; exits 1 when there is an error.")
        embed = sub.add_parser("embed", help="Register the model of an embedder alias and queue what it lacks.")
        embed.add_argument("--alias", default=DEFAULT_ALIAS)
        wait = sub.add_parser("wait", help="Show progress until no image is pending under a model.")
        wait.add_argument("--model", type=int, help="Model id (default: the serving model).")
        wait.add_argument("--timeout", type=float, default=6 * 3600, help="Give up after this many seconds (6 h).")
        wait.add_argument("--stall", type=float, default=300,
                          help="Give up when no image was embedded for this many seconds (300).")
        sub.add_parser("sweep", help="What beat's sweep does: send again the import jobs and images waiting too long, "
                                     "or all of them when the broker lost its messages.")
        sync = sub.add_parser("sync", help="Reconcile the index with the shop's own image model "
                                           "(P2W_SEARCH['IMAGE_MODEL']).")
        sync.add_argument("--content", action="store_true",
                          help="Also read every file under an unchanged name and embed again those whose content "
                               "changed (files rewritten in place without a save).")
        switch = sub.add_parser("switch", help="Make a model serve searches once it is complete.")
        switch.add_argument("model", type=int, help="Model id.")
        switch.add_argument("--force", action="store_true", help="Switch even if images are still pending.")

    def handle(self, *, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_status(self, **options):
        current = status.index_status()
        removed = ProductImage.objects.filter(in_index=False).count()
        self.stdout.write(f"{current['images']} product images in the index"
                          + (f" ({removed} removed by an admin)" if removed else ""))
        for row in reversed(current["models"]):
            model, counts = row["model"], row["counts"]
            summary = ", ".join(f"{counts[state]} {state}" for state in ("ready", "pending", "failed", "missing"))
            self.stdout.write(f"[{model.pk}] {shown(model.key)} ({model.dimensions}d, {model.state}): {summary}"
                              + _pace(row))
        self.stdout.write("workers:")
        for queue in current["workers"]:
            hosts = [_host_line(host) for host in queue["hosts"]]
            self.stdout.write(f"  {queue['queue']}: " + ("; ".join(hosts) if hosts else "no worker alive"))
        for minutes, endpoints in current["search"]["windows"].items():
            self.stdout.write(f"searches in the last {minutes} min: " + _searches_line(endpoints.get("all")))
        for finding in current["findings"]:
            self.stdout.write(_finding_line(finding, label=True))

    def do_doctor(self, **options):
        found = status.index_status()["findings"]
        if not found:
            self.stdout.write("p2w_index doctor: no problem found.")
            return
        for low, high, title in LEVELS:
            chosen = [f for f in found if low <= f.level < high]
            if chosen:
                self.stdout.write(f"{title}:")
                for finding in chosen:
                    self.stdout.write(_finding_line(finding))
        errors = sum(1 for f in found if f.is_serious())
        summary = f"p2w_index doctor: {errors} error{'s' if errors != 1 else ''}, {len(found) - errors} other."
        if errors:
            raise CommandError(summary)
        self.stdout.write(summary)

    def do_embed(self, *, alias, **options):
        if alias not in app_settings.EMBEDDERS:
            raise CommandError(f"--alias: no embedder {alias!r}; P2W_SEARCH['EMBEDDERS'] has "
                               + ", ".join(repr(name) for name in app_settings.EMBEDDERS))
        try:
            model = serving.register_model(alias)
        except InvalidEmbedderError as exc:  # the alias's entry names a backend that cannot be imported
            raise CommandError(str(exc)) from None
        queued = indexing.queue_missing(model)
        self.stdout.write(f"{model.key} ({model.state}): queued {queued} images")

    def do_wait(self, *, model, timeout, stall, **options):
        from tqdm import tqdm

        target = chosen_model(model)
        started = last_change = time.monotonic()
        last_done, rate_read = None, -RATE_EVERY
        # The rate and time left are the admin page's (rates.py), not tqdm's estimate from this run's updates.
        with tqdm(desc=f"embedding with {target.architecture}", unit="img",
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]") as bar:
            while True:
                counts = serving.model_progress(target)
                done = counts["ready"] + counts["failed"]
                now = time.monotonic()
                finished = not counts["pending"] and not counts["missing"]
                if now - rate_read >= RATE_EVERY or finished:  # the last line shows the rate it ended at
                    rate_read = now
                    bar.set_postfix_str(_pace(counts=counts, rate=rates.embedding_rate(target)).lstrip("; "),
                                        refresh=False)
                bar.total, bar.n = counts["total"], done
                bar.refresh()
                if finished:
                    break
                if done != last_done:
                    last_done, last_change = done, now
                left = counts["pending"] + counts["missing"]
                if now - started > timeout:
                    raise CommandError(f"still {left} images to embed after {timeout:g} s")
                if now - last_change > stall:
                    errors = [_finding_line(f, label=True) for f in status.index_status()["findings"]
                              if f.is_serious()]
                    raise CommandError("\n".join([
                        (f"no image was embedded for {stall:g} s and {left} are left; is a worker running on the "
                         "bulk queue? (manage.py p2w_index doctor)"), *errors]))
                time.sleep(0.5)
        self.stdout.write(f"{counts['ready']} ready, {counts['failed']} failed")

    def do_sync(self, **options):
        from p2w_search import shop_images

        if not shop_images.configured():
            raise CommandError("P2W_SEARCH['IMAGE_MODEL'] is not set: this shop's images are p2w_search's own.")
        counts = shop_images.sync(content=options["content"])
        failed = (f", {counts['failed']} failed (the log says why; the next sync tries again)"
                  if counts["failed"] else "")
        self.stdout.write(", ".join(f"{counts[key]} {key}" for key in ("created", "changed", "deleted", "unchanged"))
                          + failed + " (new and changed images are queued for embedding)")

    def do_sweep(self, **options):
        self.stdout.write(_swept_line(sweeping.sweep()))

    def do_switch(self, *, model, force, **options):
        try:
            target = serving.switch_serving(chosen_model(model), force=force)
        except serving.CannotServe as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{target.key} now serves searches")



def _swept_line(swept):
    """What a sweep sent again, and why: the broker lost its messages, or they waited longer than SWEEP_AFTER."""
    sent = f"{_count(swept.jobs, 'import job')} and {_count(swept.images, 'image')}"
    if swept.broker_lost:
        line = ("the broker had lost its messages (its Redis lost its data or went back to an older copy): "
                f"sent again {sent}, whatever their age")
    else:
        line = f"sent again what waited longer than {float(app_settings.SWEEP_AFTER):g} s: {sent}"
    line += "; and the first model's start, which never arrived" if swept.model_started else ""
    return line + (f"; dropped the index of a deleted model: {', '.join(swept.indexes_dropped)}"
                   if swept.indexes_dropped else "")


def _count(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _pace(row=None, *, counts=None, rate=None):
    """``"; 2.1 img/s, about 3 min left"`` for a model's status row (or its counts and rate); "" when retired."""
    if row is not None:
        if row["model"].state == "retired":
            return ""
        counts, rate = row["counts"], row["rate"]
    left = rates.seconds_left(counts, rate)
    pace = "rate unknown yet" if rate is None else f"{rate:.3g} img/s"
    if left == 0:
        return f"; {pace}, complete"
    return f"; {pace}, " + ("time left unknown" if left is None else f"about {duration_text(left)} left")


def _host_line(host):
    now = timezone.now()
    last = (f"last task {duration_text((now - host['last_task_at']).total_seconds())} ago" if host["last_task_at"]
            else "no task yet")
    processes = f"{host['processes']} process{'es' if host['processes'] != 1 else ''}"
    # A hostname, a device and a model name come from the workers' rows: written with escapes (shown), as a
    # terminal would act on an escape sequence in them.
    return shown(f"{host['hostname']} ({processes}, {'/'.join(host['devices'])}, models: "
                 f"{', '.join(host['models']) or 'none'}, {last}, {host['tasks']} tasks)")


def _searches_line(stats):
    if not stats or not stats["requests"]:
        return "none"
    latency = "" if stats["p50"] is None else f", p50 {stats['p50']:.3g} ms, p95 {stats['p95']:.3g} ms"
    return (f"{stats['requests']} ({stats['ok']} answered{latency}; 4xx {stats['rejected']}, 429 {stats['throttled']},"
            f" 503 {stats['unavailable']}, 5xx {stats['failed']})")


def _finding_line(finding, *, label=False):
    """A check message as ``manage.py check`` writes it, optionally led by its level."""
    level = {checks.ERROR: "ERROR", checks.WARNING: "WARNING"}.get(finding.level, "INFO") + " " if label else ""
    hint = f"\n\tHINT: {shown(finding.hint)}" if finding.hint else ""
    return f"{level}({finding.id}) {shown(finding.msg)}{hint}"

"""Run the whole demo shop: migrate, load the catalog, start web + workers under circus, embed, serve.

Started by ``bin/demo`` inside ``shop_demo.services``, which provides PostgreSQL and
Redis. The web server and Celery processes are the ``Procfile``'s, supervised by circus
(shop_demo/supervision.py): a process that dies is started again while the others keep
serving. SIGTERM or SIGINT (Ctrl-C) stops them in order, gracefully. Logs are in
``$P2W_VAR_DIR/logs/``. A second run finds everything in place and only starts the processes.
"""

import os
import signal
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from shop_demo.supervision import Supervisor, procfile


class Stop(Exception):
    """A stop was asked for (SIGTERM or SIGINT)."""


def _stop(signum, frame):
    raise Stop(signal.Signals(signum).name)


class Command(BaseCommand):
    help = "Start the demo shop on this machine (what bin/demo runs)."

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=settings.DEMO_SIZE,
                            help="Products in the demo catalog.")
        parser.add_argument("--bind", default=os.environ.get("P2W_BIND", "127.0.0.1:8000"))
        parser.add_argument("--no-serve", action="store_true", help="Prepare and embed, then stop.")

    def handle(self, *, size, bind, no_serve, **options):
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._admin_user()
        call_command("load_demo_catalog", size=size)
        self._merchant_user()
        call_command("p2w_index", "embed")

        env = {**os.environ, "P2W_VAR_DIR": str(settings.VAR_DIR),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        supervisor = Supervisor(bind=bind, var_dir=settings.VAR_DIR, env=env).start()
        try:
            supervisor.wait_started(procfile())
            self.stdout.write(f"web server and workers started under circus (logs: {supervisor.log_dir})")
            call_command("p2w_index", "wait")
            self._serve_configured_weights()
            if no_serve:
                return
            self._print_urls(bind)
            while supervisor.running():
                time.sleep(1)
            raise CommandError(f"circusd stopped (exit {supervisor.process.returncode}); see {supervisor.log_dir}")
        except Stop as stop:
            self.stdout.write(f"\n{stop}: stopping the web server, then the workers ...")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the stop short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            supervisor.stop()
            self.stdout.write("stopped")

    def _serve_configured_weights(self):
        """Switch searches to the CLIP the demo is configured with, once its vectors are complete.

        A var/ kept from an earlier version of the demo (or run with other weights) serves the
        vectors of the CLIP it was built with, which the embedder no longer loads; ``p2w_index
        embed`` has registered the new one as building. A real shop switches by hand
        (``p2w_index switch``); the demo's index is the demo's own, so it switches itself.
        """
        from p2w_search import indexing
        from p2w_search.models import EmbeddingModel

        model = indexing.register_model()
        if model.state == EmbeddingModel.State.SERVING:
            return
        call_command("p2w_index", "wait", "--model", str(model.pk))
        call_command("p2w_index", "switch", str(model.pk))
        self.stdout.write(f"the demo's CLIP changed: searches now use {model.key}")

    def _admin_user(self):
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", "admin")
            self.stdout.write("demo admin user: admin / admin")

    def _merchant_user(self):
        from shop_demo.catalog.management.commands.load_demo_catalog import MERCHANT_SLUG
        from shop_demo.catalog.models import Merchant

        User = get_user_model()
        merchant = Merchant.objects.get(slug=MERCHANT_SLUG)
        if merchant.user is None:
            merchant.user = User.objects.filter(username="merchant").first() or User.objects.create_user(
                "merchant", "merchant@example.com", "merchant")
            merchant.save(update_fields=["user"])
            self.stdout.write(f"demo merchant user: merchant / merchant ({merchant.name})")

    def _print_urls(self, bind):
        base = f"http://{bind}"
        self.stdout.write(self.style.SUCCESS(
            "\nThe demo shop is running:\n"
            f"  shop and links   {base}/\n"
            f"  text search      {base}/api/search/text/?q=red+dress\n"
            f"  API docs         {base}/api/docs/\n"
            f"  merchant pages   {base}/merchant/   (merchant / merchant)\n"
            f"  admin            {base}/admin/   (admin / admin)\n"
            "Press Ctrl-C to stop."
        ))

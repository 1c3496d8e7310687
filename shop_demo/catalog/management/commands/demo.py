"""Run the whole demo shop: migrate, load the catalog, start web + workers, embed, serve.

Started by ``bin/demo`` inside ``shop_demo.services``, which provides PostgreSQL and
Redis. The web server and Celery processes run under honcho from the Procfile; their
logs go to ``$P2W_VAR_DIR/logs/services.log``. A second run finds everything in place
and only starts the processes.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from shop_demo.services import REPO_DIR


class Command(BaseCommand):
    help = "Start the demo shop on this machine (what bin/demo runs)."

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=int(os.environ.get("P2W_DEMO_SIZE", "1000")),
                            help="Products in the demo catalog.")
        parser.add_argument("--bind", default=os.environ.get("P2W_BIND", "127.0.0.1:8000"))
        parser.add_argument("--no-serve", action="store_true", help="Prepare and embed, then stop.")

    def handle(self, *, size, bind, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._admin_user()
        call_command("load_demo_catalog", size=size)
        call_command("p2w_index", "embed")

        logs = Path(settings.VAR_DIR) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "P2W_BIND": bind, "P2W_VAR_DIR": str(settings.VAR_DIR),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        with open(logs / "services.log", "ab") as log:
            honcho = subprocess.Popen(
                [sys.executable, "-m", "honcho", "-f", str(REPO_DIR / "Procfile"), "start"],
                cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.stdout.write(f"web server and workers started (logs: {logs / 'services.log'})")
        try:
            call_command("p2w_index", "wait")
            if no_serve:
                return
            self._print_urls(bind)
            honcho.wait()
            if honcho.returncode not in (0, -signal.SIGINT):
                raise CommandError(f"a demo process stopped (exit {honcho.returncode}); see {logs / 'services.log'}")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping ...")
        finally:
            if honcho.poll() is None:
                honcho.send_signal(signal.SIGINT)
                try:
                    honcho.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    honcho.kill()

    def _admin_user(self):
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", "admin")
            self.stdout.write("demo admin user: admin / admin")

    def _print_urls(self, bind):
        base = f"http://{bind}"
        time.sleep(0.5)
        self.stdout.write(self.style.SUCCESS(
            "\nThe demo shop is running:\n"
            f"  shop and links   {base}/\n"
            f"  text search      {base}/api/search/text/?q=red+dress\n"
            f"  API docs         {base}/api/docs/\n"
            f"  admin            {base}/admin/   (admin / admin)\n"
            "Press Ctrl-C to stop."
        ))

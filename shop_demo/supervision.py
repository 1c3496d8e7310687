"""The demo's processes on one machine, supervised by circus: what dies comes back, the rest keep serving.

``bin/demo`` runs the ``Procfile``'s processes (web, bulk, query, beat) under ``circusd``
(circus, from PyPI), configured here from the Procfile itself:

- a process that dies is started again at once; one that keeps dying (3 deaths within 30 s)
  is started again after 5 s, up to 5 times, then left stopped (circus's flapping plugin);
  each restart is in ``$P2W_VAR_DIR/logs/circus.log``;
- the web server's listening socket belongs to circusd, not to gunicorn: while gunicorn
  restarts, connections wait in the socket's backlog instead of being refused;
- each process's output goes to ``$P2W_VAR_DIR/logs/<name>.log``, rotated at 10 MB, 3 kept;
- a stop is graceful and ordered: a stopping page takes the web socket's new connections
  (a 503 with Retry-After, shop_demo/stopping.py), the web server finishes the requests in
  flight (whose queries the workers still answer), then beat and the workers stop (a worker
  finishes its batch; one killed instead leaves it to Redis to hand to another), then circusd.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shop_demo.services import REPO_DIR

__all__ = ["procfile", "circus_config", "Supervisor", "STOP_ORDER"]

# While the web server stops, this answers the socket's new connections with a 503 (shop_demo/stopping.py).
STOPPING = "stopping"
STOPPING_COMMAND = "gunicorn shop_demo.stopping:application --bind ${P2W_BIND} --workers 1 --threads 4"
# The order of a graceful stop, and how long each may take (seconds) before it is killed.
STOP_ORDER = ("web", "beat", "query", "bulk", STOPPING)
GRACE = {"web": 25, "beat": 10, "query": 20, "bulk": 120, STOPPING: 5}
# circusd starts watchers from the highest priority down: the workers before the web server.
PRIORITY = {"bulk": 4, "query": 3, "beat": 2, "web": 1}
LOG_BYTES, LOG_BACKUPS = 10 * 1024 * 1024, 3


def procfile(path=REPO_DIR / "Procfile"):
    """``{name: command}`` of the Procfile's lines."""
    lines = {}
    for line in Path(path).read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            lines[name.strip()] = command.strip()
    return lines


def circus_config(*, bind, run_dir, log_dir):
    """The text of a circus ini that runs the Procfile's processes, the web server on ``bind`` (host:port)."""
    host, port = bind.rsplit(":", 1)
    run_dir, log_dir = Path(run_dir), Path(log_dir)
    lines = [
        "[circus]",
        f"endpoint = ipc://{run_dir / 'circus-control.sock'}",
        f"pubsub_endpoint = ipc://{run_dir / 'circus-pubsub.sock'}",
        "statsd = False",
        "check_delay = 5",
        "",
        "[plugin:flapping]",
        "use = circus.plugins.flapping.Flapping",
        "attempts = 3",
        "window = 30",
        "retry_in = 5",
        "max_retry = 5",
        "",
        "[socket:web]",
        f"host = {host.strip('[]')}",
        f"port = {port}",
        "",
    ]
    commands = {**procfile(), STOPPING: STOPPING_COMMAND}
    for name, command in commands.items():
        # bash's exec keeps the watched pid the program's own; env takes the Procfile's VAR=value prefixes.
        script = f"exec env {command} 2>&1"
        if name in ("web", STOPPING):
            script = f"export P2W_BIND=fd://$(circus.sockets.web); {script}"
        lines += [
            f"[watcher:{name}]",
            "cmd = bash",
            f"args = -c '{script}'",
            f"working_dir = {REPO_DIR}",
            "copy_env = True",
            f"use_sockets = {name in ('web', STOPPING)}",
            f"autostart = {name != STOPPING}",
            "stop_signal = TERM",
            "stop_children = True",
            f"graceful_timeout = {GRACE.get(name, 30)}",
            f"priority = {PRIORITY.get(name, 0)}",
            "stdout_stream.class = FileStream",
            f"stdout_stream.filename = {log_dir / f'{name}.log'}",
            f"stdout_stream.max_bytes = {LOG_BYTES}",
            f"stdout_stream.backup_count = {LOG_BACKUPS}",
            "",
        ]
    return "\n".join(lines)


class Supervisor:
    """circusd running the demo's processes: start, ask for pids, stop in order."""

    def __init__(self, *, bind, var_dir, env):
        self.run_dir = Path(var_dir) / "circus"
        self.log_dir = Path(var_dir) / "logs"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config = self.run_dir / "circus.ini"
        self.config.write_text(circus_config(bind=bind, run_dir=self.run_dir, log_dir=self.log_dir))
        self.env = env  # circusd's environment, which every process copies
        self.process = None

    def start(self):
        with open(self.log_dir / "circus.log", "ab") as log:
            # A session of its own: a Ctrl-C reaches the launcher, which stops everything in order.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "circus.circusd", str(self.config)], cwd=REPO_DIR, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def call(self, command, timeout=10.0, **properties):
        from circus.client import CircusClient

        client = CircusClient(endpoint=f"ipc://{self.run_dir / 'circus-control.sock'}", timeout=timeout)
        try:
            return client.call({"command": command, "properties": properties})
        finally:
            client.stop()

    def pids(self, name):
        """The pids circus watches for process ``name`` (empty while it is down)."""
        return self.call("list", name=name).get("pids", [])

    def running(self):
        return self.process is not None and self.process.poll() is None

    def wait_started(self, names, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"circusd exited with {self.process.returncode}; see {self.log_dir}")
            try:
                if all(self.pids(name) for name in names):
                    return
            except Exception:  # noqa: BLE001 - the control socket is not there yet
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the demo's processes did not start within {timeout} s; see {self.log_dir}")

    def stop(self):
        """Stop the processes in STOP_ORDER, each gracefully, then circusd; kill what is left.

        The stopping page takes the web socket first, so a request that arrives while the web
        server finishes those in flight gets a 503, not a connection reset at the end.
        """
        if not self.running():
            return
        try:
            self.call("start", timeout=30, name=STOPPING, waiting=True)
        except Exception:  # noqa: BLE001 - without it the stop goes on; late requests may be reset
            pass
        for name in STOP_ORDER:
            try:
                self.call("stop", timeout=GRACE.get(name, 30) + 5, name=name, waiting=True)
            except Exception:  # noqa: BLE001 - circusd gone or slow: the quit below ends the rest
                break
        self.process.send_signal(signal.SIGTERM)  # circusd's own quit
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

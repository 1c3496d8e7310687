"""Celery workers forked from an interpreter that has imported torch and open_clip already.

A ``celery worker`` spends 7-9 s of CPU importing torch, torchvision and open_clip before it
can answer, and the suite starts some fifty. This module, run as a process of its own
(``python -m tests.warm_start``), imports them once and then forks one child per worker the
tests ask for. Each child is a real worker process, as ``python -m celery`` would start it:
a session of its own, the environment, directory and log it was given, the command line run
by Celery's own entry point; it imports Django and the app itself, on its own database
connections. Only the library imports are shared, as Celery's prefork pool shares them with
its children.

The tests talk to it through :class:`WarmStarter` (one per test process): one JSON line per
worker asked for, the child's pid in answer. It reaps its children and writes each exit
status to the file the request named, which :class:`WarmProcess` reads as ``returncode``.
When the test process goes away (its end of the pipe closes), the children still running
are killed with their process groups.
"""

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent

# What a worker imports before it can serve, and nothing that reads the environment of one
# worker (settings, the app): those each child imports for itself.
PRELOADED = ("numpy", "PIL.Image", "torch", "torchvision", "open_clip", "psycopg", "redis", "kombu", "celery",
             "celery.bin.celery", "billiard", "django")


class WarmProcess:
    """A forked worker, as much of ``subprocess.Popen`` as the tests use: pid, returncode, poll, wait."""

    def __init__(self, pid, status_path):
        self.pid = pid
        self.returncode = None
        self._status_path = status_path

    def poll(self):
        if self.returncode is None and self._status_path.exists():
            text = self._status_path.read_text()
            if text.endswith("\n"):  # written whole
                self.returncode = int(text)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)


class WarmStarter:
    """The test process's end: starts the warm interpreter on first use and asks it for workers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._server = None

    def celery(self, args, *, env, cwd, log_path):
        """Start ``celery ARGS``, as ``python -m celery ARGS`` would, in a child with this environment and log."""
        log_path = Path(log_path)
        status_path = log_path.with_name(log_path.name + ".exit")
        request = {"argv": ["celery", *map(str, args)], "env": env, "cwd": str(cwd), "log": str(log_path),
                   "status": str(status_path)}
        with self._lock:
            server = self._running()
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            answer = server.stdout.readline()
        if not answer:
            raise RuntimeError(f"the warm starter exited with {server.wait()}")
        answer = json.loads(answer)
        if "error" in answer:
            raise RuntimeError(f"the warm starter could not start celery {args}: {answer['error']}")
        return WarmProcess(answer["pid"], status_path)

    def prepare(self):
        """Start the warm interpreter now, so that it imports while other work goes on."""
        with self._lock:
            self._running()

    def _running(self):
        if self._server is None or self._server.poll() is not None:
            self._server = subprocess.Popen(
                [sys.executable, "-m", "tests.warm_start"], cwd=REPO_DIR, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, bufsize=1)
        return self._server


starter = WarmStarter()


def serve(requests=sys.stdin, answers=sys.stdout):
    """The warm interpreter's loop: fork a worker for each request line, reap them, end with the pipe."""
    for name in PRELOADED:
        __import__(name)
    children = {}
    while True:
        readable, _, _ = select.select([requests], [], [], 0.05)
        _reap(children)
        if not readable:
            continue
        line = requests.readline()
        if not line:
            break
        request = json.loads(line)
        try:
            pid = os.fork()
        except OSError as error:
            answers.write(json.dumps({"error": str(error)}) + "\n")
            answers.flush()
            continue
        if pid == 0:
            _run_worker(request, requests, answers)  # never returns
        children[pid] = Path(request["status"])
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while children:
        _reap(children, block=True)
    os._exit(0)  # no interpreter shutdown: tearing torch down takes seconds and saves nothing


def _reap(children, block=False):
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        path = children.pop(pid, None)
        if path is not None:
            path.write_text(f"{os.waitstatus_to_exitcode(status)}\n")


def _run_worker(request, requests, answers):
    """The child: a worker process with the request's session, directory, environment, log and command line."""
    code = 1
    try:
        requests.close()
        answers.close()
        os.setsid()
        os.chdir(request["cwd"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        sys.stdin = sys.__stdin__ = open(0, closefd=False)
        sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, closefd=False)
        sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        from celery.__main__ import main

        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the tests ends this through its pipe
    serve()

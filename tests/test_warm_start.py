"""The warm starter the tests' workers come from (tests/warm_start.py) reports what a process start would."""

import signal

from tests.warm_start import REPO_DIR, starter


def test_a_forked_celery_reports_its_exit_status_and_writes_its_log(tmp_path):
    log = tmp_path / "bad.log"
    process = starter.celery(["--no-such-option"], env={"PATH": "/usr/bin:/bin"}, cwd=REPO_DIR, log_path=log)
    assert process.wait(timeout=60) == 2  # click's usage error, as `python -m celery --no-such-option` exits
    assert "Error: No such option '--no-such-option'" in log.read_text()


def test_a_killed_worker_reports_the_signal(start_worker):
    worker = start_worker(queues=["p2w_warm_start_test"])
    assert worker.process.poll() is None
    worker.kill()
    assert worker.process.returncode == -signal.SIGKILL

"""The demo's supervision as configured: every Procfile process under circus, restarted, logs rotated."""

import configparser
import logging

from p2w_search.workers import ResultSummary
from shop_demo.supervision import STOP_ORDER, STOPPING, circus_config, procfile


def config(tmp_path):
    parser = configparser.RawConfigParser()
    parser.read_string(circus_config(bind="127.0.0.1:8123", run_dir=tmp_path / "run", log_dir=tmp_path / "logs"))
    return parser


def test_every_procfile_process_is_a_circus_watcher_running_its_line(tmp_path):
    parser = config(tmp_path)
    lines = procfile()
    assert set(lines) == {"web", "bulk", "query", "beat"}
    for name, command in lines.items():
        watcher = parser[f"watcher:{name}"]
        assert watcher["cmd"] == "bash" and f"exec env {command} 2>&1" in watcher["args"]
        assert watcher["autostart"] == "True" and watcher["stop_signal"] == "TERM"
        assert watcher["stdout_stream.filename"] == str(tmp_path / "logs" / f"{name}.log")
        assert (watcher["stdout_stream.max_bytes"], watcher["stdout_stream.backup_count"]) == ("10485760", "3")


def test_the_web_socket_belongs_to_circusd_and_the_stopping_page_takes_it_on_a_stop(tmp_path):
    parser = config(tmp_path)
    assert (parser["socket:web"]["host"], parser["socket:web"]["port"]) == ("127.0.0.1", "8123")
    for name in ("web", STOPPING):
        assert parser[f"watcher:{name}"]["use_sockets"] == "True"
        assert "export P2W_BIND=fd://$(circus.sockets.web);" in parser[f"watcher:{name}"]["args"]
    assert parser[f"watcher:{STOPPING}"]["autostart"] == "False"
    assert STOP_ORDER[0] == "web" and STOP_ORDER[-1] == STOPPING


def test_a_process_that_keeps_dying_is_retried_with_a_delay_then_left_stopped(tmp_path):
    flapping = config(tmp_path)["plugin:flapping"]
    assert flapping["use"] == "circus.plugins.flapping.Flapping"
    assert (flapping["attempts"], flapping["window"], flapping["retry_in"], flapping["max_retry"]) == (
        "3", "30", "5", "5")


def test_the_stopping_page_is_a_503_that_says_so():
    from shop_demo.stopping import application

    started = []
    body = b"".join(application({}, lambda status, headers: started.append((status, dict(headers)))))
    (status, headers), = started
    assert status == "503 Service Unavailable" and headers["Retry-After"] == "60"
    assert body == b'{"detail": "The shop is stopping; try again in a minute."}'


def test_a_task_result_is_logged_as_its_size():
    record = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1,
                               "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
                               ({"name": "encode_query", "id": "abc", "runtime": 0.01,
                                 "return_value": repr({"vector": [0.1] * 512})},), None)
    assert ResultSummary().filter(record)
    assert record.getMessage() == "Task encode_query[abc] succeeded in 0.01s: <result of 2572 characters>"
    record.args = {"name": "embed_batch", "id": "x", "runtime": 1.0, "return_value": "32"}
    ResultSummary().filter(record)
    assert record.getMessage() == "Task embed_batch[x] succeeded in 1.0s: 32"

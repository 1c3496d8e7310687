"""The prepared GPU check (bench/gpu.py) runs end to end, here on the CPU.

A session lent a GPU has minutes to run it, so it must not be found broken there. On the
CPU, fp32 must equal CPU fp32 exactly (the same computation), and the report must hold a
row for each model, precision and batch asked for.
"""

import json

from bench import gpu


def test_the_gpu_check_runs_on_the_cpu_and_reports_every_row(tmp_path):
    status = gpu.main(["--device", "cpu", "--models", "demo", "--batches", "1,2", "--repeats", "1",
                       "--fidelity-inputs", "3", "--out", str(tmp_path)])

    data = json.loads((tmp_path / "gpu.json").read_text())
    assert status == 0  # every cosine at least 0.999
    fp32 = [row for row in data["fidelity"] if row["precision"] == "fp32"]
    assert {row["kind"] for row in fp32} == {"image", "text", "composed"}
    assert all(row["inputs"] == 3 and row["min_cosine"] > 0.99999 for row in fp32)
    assert sorted((row["precision"], row["batch"]) for row in data["throughput"]) == [
        ("bf16", 1), ("bf16", 2), ("fp16", 1), ("fp16", 2), ("fp32", 1), ("fp32", 2)]
    report = (tmp_path / "gpu.md").read_text()
    assert "| demo | bf16 | " in report and "| demo | fp16 | 2 | " in report


def test_a_cosine_under_the_goal_fails_the_check(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "GOAL_COSINE", 1.5)  # no cosine reaches it
    status = gpu.main(["--device", "cpu", "--models", "demo", "--batches", "1", "--repeats", "1",
                       "--fidelity-inputs", "2", "--out", str(tmp_path)])
    assert status == 1

"""Write one benchmark's results: JSON, a markdown table, and the machine they came from.

Every figure is reported against a baseline measured in the same run, because these
machines are noisy; absolute times are kept, but only together with the machine.
"""

import json
import os
import platform
import subprocess
import time
from pathlib import Path

__all__ = ["RESULTS_DIR", "machine", "markdown_table", "write_results", "percentiles", "pyplot"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine():
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        torch_version = torch.__version__
    except ImportError:
        gpu, torch_version = None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS_DIR.parent.parent).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version(),
            "torch": torch_version, "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def percentiles(samples, points=(50, 95, 99)):
    """{"p50": ..., ...} of ``samples`` (seconds), in milliseconds."""
    import numpy as np

    values = np.asarray(samples, dtype=float) * 1000
    return {f"p{p}": float(np.percentile(values, p)) for p in points}


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (benchmarks run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def markdown_table(header, rows):
    """A markdown table; floats are written with 3 significant digits."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name, data, markdown, *, out=RESULTS_DIR):
    """Write ``<name>.json`` (data + machine) and ``<name>.md`` (title, machine, markdown) to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    (out / f"{name}.json").write_text(json.dumps({"machine": info, **data}, indent=1) + "\n")
    where = f"{info['cpu']}, {info['cores']} cores" + (f", {info['gpu']}" if info["gpu"] else "")
    (out / f"{name}.md").write_text(f"Measured {info['date']} on {where} (commit {info['commit']}).\n\n"
                                    f"{markdown.strip()}\n")
    return out / f"{name}.md"

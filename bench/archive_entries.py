"""Memory and time of checking an uploaded zip by its number of entries: counted before zipfile lists them.

A zip of many empty entries is small (about 90 bytes an entry) but zipfile keeps an object
for each entry it lists. ``check_archive`` counts the central directory's records first and
refuses more than twice ``IMPORT_MAX_FILES`` before zipfile lists anything. Each size is
checked by a fresh process that reports its peak resident memory (``VmHWM``); the baseline,
measured in the same run, is zipfile listing the same zip, as the check did before.

    bench/run archive_entries --entries 40000,500000
"""

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile

from bench.report import markdown_table, write_results

NAME = "archive_entries"
RUN = """
import django, re, time; django.setup()
import zipfile
from p2w_search.uploads.archive import ArchiveRejected, check_archive
started, outcome = time.monotonic(), "listed"
with open({path!r}, "rb") as file:
    if {shipped}:
        try:
            check_archive(file)
            outcome = "passed"
        except ArchiveRejected as exc:
            outcome = "refused"
    else:
        len(zipfile.ZipFile(file).infolist())
print(outcome, time.monotonic() - started, re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", default="40000,500000", help="entries in the zip, comma-separated")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for count in (int(entries) for entries in args.entries.split(",")):
            path = os.path.join(folder, f"{count}.zip")
            with zipfile.ZipFile(path, "w") as archive:
                for n in range(count):
                    archive.writestr(f"{n}.png", b"")
            outcome, seconds, peak = measure(path, shipped=True)
            _, base_seconds, base_peak = measure(path, shipped=False)
            rows.append({"entries": count, "zip_mb": os.path.getsize(path) / 2**20, "outcome": outcome,
                         "peak_mb": peak, "seconds": seconds, "zipfile_peak_mb": base_peak,
                         "zipfile_seconds": base_seconds, "time_ratio": seconds / base_seconds})
            print(rows[-1], flush=True)
    table = markdown_table(
        ["entries", "zip MB", "check_archive", "peak MiB", "s", "zipfile listing: peak MiB", "s",
         "time, x of zipfile's"],
        [[r["entries"], r["zip_mb"], r["outcome"], r["peak_mb"], r["seconds"], r["zipfile_peak_mb"],
          r["zipfile_seconds"], r["time_ratio"]] for r in rows])
    write_results(NAME, {"rows": rows}, "Peak resident memory and time of `check_archive` in a fresh process, by "
                  "the number of empty entries in the zip (`IMPORT_MAX_FILES` 20,000: at most 40,000 entries are "
                  "listed), against zipfile listing the same zip in the same run.\n\n" + table)


def measure(path, *, shipped):
    output = subprocess.run([sys.executable, "-c", RUN.format(path=path, shipped=shipped)], env={**os.environ},
                            capture_output=True, text=True)
    if output.returncode:
        raise RuntimeError(output.stderr[-3000:])
    outcome, seconds, peak = output.stdout.split()[-3:]
    return outcome, float(seconds), int(peak) / 1024


if __name__ == "__main__":
    main()

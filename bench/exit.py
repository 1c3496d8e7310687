"""How long a demo process takes to exit once its work is done, with and without the frozen heap.

``shop_demo`` registers ``gc.freeze`` to run at exit, so that the interpreter's last garbage
collections skip the objects torch and open_clip loaded. Each round starts two fresh processes
that set Django up with the demo's settings, load the default CLIP and its mapping, encode one
sentence, print the clock and return; one of them first takes the handler off again (the
baseline, in the same run). The figure is the time from that print to the process's end, as
the parent sees it. The rounds alternate the two, so that load from other jobs falls on both.

    bench/run exit --rounds 5
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from bench.report import markdown_table, write_results

NAME = "exit"
CHILD = """
import atexit, gc, time
import django
django.setup()
from p2w_search.embedders import get_embedder
embedder = get_embedder()
embedder.mapping()
embedder.embed_texts(["a red dress"])
if {baseline}:
    atexit.unregister(gc.freeze)
print(time.monotonic(), flush=True)
"""


def exit_seconds(baseline):
    process = subprocess.run([sys.executable, "-c", CHILD.format(baseline=baseline)], env={**os.environ},
                             capture_output=True, text=True)
    ended = time.monotonic()
    if process.returncode:
        raise RuntimeError(process.stderr[-3000:])
    return ended - float(process.stdout.split()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    samples = {"frozen": [], "baseline": []}
    for round_ in range(args.rounds):
        for kind in (("baseline", "frozen") if round_ % 2 else ("frozen", "baseline")):
            samples[kind].append(exit_seconds(kind == "baseline"))
        print({kind: round(values[-1], 3) for kind, values in samples.items()}, flush=True)
    frozen, baseline = (statistics.median(samples[k]) for k in ("frozen", "baseline"))
    table = markdown_table(["process", "exit s (median)", "min", "max", "ratio to baseline"], [
        ["shop_demo as shipped (heap frozen at exit)", frozen, min(samples["frozen"]), max(samples["frozen"]),
         frozen / baseline],
        ["baseline: the same, handler taken off", baseline, min(samples["baseline"]), max(samples["baseline"]), 1.0],
    ])
    write_results(NAME, {"rounds": args.rounds, "seconds": samples},
                  f"Seconds from a demo process's last line to its end ({args.rounds} rounds, alternating): a "
                  f"process that set Django up and loaded the default CLIP and mapping.\n\n{table}")


if __name__ == "__main__":
    main()

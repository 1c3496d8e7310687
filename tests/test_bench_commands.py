"""Every benchmark command the documentation shows is one its script accepts.

The benchmarks run by hand (minutes to an hour each), never in the suite, so what rots
unseen is the command a page tells the next person to run: a flag renamed, an option
dropped, a script moved. Each command written in the README, the docs, the results pages
or the training notes (``python -m bench.<name> ...`` or ``bench/run <name> ... --options``)
is handed to its script's own ``main``, which stops right after its parser accepted the
arguments: nothing is measured, and a command the parser refuses fails with the parser's
own message.
"""

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "bench" / "results").glob("*.md"),
                *(REPO / "shop_demo").rglob("*.md")])
MODULE_FORM = re.compile(r"python -m bench\.(?P<names>[a-z_]+)(?P<args>[^`|)#\n]*)")
RUN_FORM = re.compile(r"\bbench/run(?P<names>(?: +[a-z_]+)+)(?P<args>(?: +-[^`|)#\n]*)?)")
# Words a page writes after a command that are prose, not arguments ("--help for the sizes").
PROSE = re.compile(r" +(for|to|and|or|with|on|in|each|ran|gives|takes)\b.*$")


def documented_commands():
    """``(where, bench module, argv)`` of each benchmark command the pages write, continued lines joined."""
    found = []
    for page in PAGES:
        for number, line in joined_lines(page.read_text(encoding="utf-8")):
            for form in (MODULE_FORM, RUN_FORM):
                for match in form.finditer(line):
                    args = PROSE.sub("", match["args"]).strip()
                    argv = shlex.split(args)
                    for name in match["names"].split():
                        found.append((f"{page.relative_to(REPO)}:{number}", name, argv))
    return found


def joined_lines(text):
    """``(number, line)`` of ``text``, a line ending in a backslash joined with the next (numbered as its first)."""
    start, pending = None, ""
    for number, line in enumerate(text.splitlines(), start=1):
        start = start or number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        start, pending = None, ""


COMMANDS = documented_commands()


class Parsed(Exception):
    """Raised by the patched parser once it accepted the arguments: the benchmark itself never starts."""


@pytest.fixture
def parse_only(monkeypatch):
    accept = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise Parsed(accept(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)


def test_the_pages_show_commands_of_most_benchmarks():
    scripts = {path.stem for path in (REPO / "bench").glob("*.py") if "def main(argv=None)" in path.read_text()}
    shown = {name for _, name, _ in COMMANDS}
    assert len(COMMANDS) >= 40
    assert shown <= scripts, f"pages name benchmarks that do not exist: {sorted(shown - scripts)}"
    assert len(scripts - shown) <= 5, f"benchmarks no page shows how to run: {sorted(scripts - shown)}"


@pytest.mark.parametrize("where,name,argv", COMMANDS, ids=[f"{w} {n}" for w, n, _ in COMMANDS])
def test_documented_command_is_accepted(where, name, argv, parse_only, capsys):
    module = importlib.import_module(f"bench.{name}")
    try:
        module.main(argv)
    except Parsed:
        return
    except SystemExit as exit:
        output = capsys.readouterr()
        if "--help" in argv and exit.code == 0:
            assert output.out.startswith("usage:")
            return
        pytest.fail(f"{where}: bench.{name} {' '.join(argv)!r} is refused by its parser: {output.err.strip()}")
    pytest.fail(f"{where}: bench.{name} ran without parsing its arguments")

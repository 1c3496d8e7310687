"""What the Oscar shop wrote to add p2w-search, counted as the README counts it, and Django's checks on it."""

import ast
import io
import re
from pathlib import Path

from django.core.management import call_command

SHOP = Path(__file__).resolve().parents[1] / "myshop"
README = Path(__file__).resolve().parents[3] / "README.md"
MARKER = "# ---- p2w-search"


def code_lines(text):
    """Lines of code: not blank, not only a comment, not part of a docstring."""
    docstrings = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for number, line in enumerate(text.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and number not in docstrings)


def glue():
    settings = (SHOP / "settings.py").read_text()
    urls = [line for line in (SHOP / "urls.py").read_text().splitlines() if "p2w_search" in line]
    python = {name: code_lines((SHOP / name).read_text()) for name in ("__init__.py", "celery.py", "serializers.py")}
    return {"settings": code_lines(settings[settings.index("\n" + MARKER):]), "urls": len(urls),
            "celery": python["__init__.py"] + python["celery.py"], "serializer": python["serializers.py"]}


def test_the_readme_states_the_glue_the_shop_wrote():
    counts = glue()
    sentence = (r"Glue: (\d+) lines of settings, (\d+) URL line, (\d+) lines of Python "
                r"\(the Celery app (\d+), the serializer and its queryset (\d+)\)")
    stated = re.search(sentence.replace(" ", r"\s+"), README.read_text())
    assert stated, "README's 'Add p2w-search to an existing shop' states the Oscar shop's glue"
    assert [int(n) for n in stated.groups()] == [counts["settings"], counts["urls"],
                                                 counts["celery"] + counts["serializer"], counts["celery"],
                                                 counts["serializer"]], counts


def test_django_s_checks_pass_and_no_migration_is_missing(db):
    out = io.StringIO()
    call_command("check", "--database", "default", stdout=out)
    assert "System check identified no issues" in out.getvalue()
    call_command("makemigrations", "--check", "--dry-run", "p2w_search", verbosity=0)

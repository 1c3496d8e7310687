"""Every task the app and the demo send goes through ``p2w_search.dispatch`` (by name, guarded against a broker outage)."""

import ast
from pathlib import Path

from tests.workers import REPO_DIR

SENDING = {"apply_async", "delay", "send_task"}


def sends(path):
    """``(line, call)`` of each call in ``path`` that sends a Celery task other than through dispatch."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SENDING:
            found.append((node.lineno, ast.unparse(node.func)))
    return found


def test_only_dispatch_sends_tasks():
    sources = [path for folder in ("p2w_search", "shop_demo") for path in (Path(REPO_DIR) / folder).rglob("*.py")
               if "migrations" not in path.parts]
    assert len(sources) > 50
    others = {str(path.relative_to(REPO_DIR)): found for path in sources
              if path.name != "dispatch.py" and (found := sends(path))}
    assert others == {}
    assert [call for _, call in sends(Path(REPO_DIR) / "p2w_search" / "dispatch.py")] == [
        "current_app.send_task", "current_app.send_task"]

"""bin/demo on a var/ kept from a demo that shipped other CLIP weights: it embeds with the new
ones and switches searches to them, instead of serving vectors its embedder no longer makes."""

import os
import subprocess
import sys

import psycopg
import pytest
import torch

from tests.conftest import empty_database
from tests.nested import SESSIONS
from tests.workers import REPO_DIR

pytestmark = pytest.mark.worker

WEIGHTS = REPO_DIR / "shop_demo" / "clip" / "weights"


def other_weights(folder):
    """The shipped CLIP with one weight nudged (another checksum), and the shipped mapping declared for it."""
    from p2w_search.embedders.openclip import file_sha256

    folder.mkdir()
    clip = torch.load(WEIGHTS / "p2w-demo-small.pt", map_location="cpu", weights_only=False)
    state = clip.get("state_dict", clip)
    state["logit_scale"] = state["logit_scale"] + 0.01
    torch.save(clip, folder / "p2w-demo-small.pt")
    mapping = torch.load(WEIGHTS / "p2w-demo-small-mapping.pt", map_location="cpu", weights_only=False)
    mapping["clip"]["checksum"] = file_sha256(folder / "p2w-demo-small.pt")
    torch.save(mapping, folder / "mapping.pt")
    return folder / "p2w-demo-small.pt", folder / "mapping.pt"


def run_demo(var_dir, database_url, **env):
    """``bin/demo --no-serve`` on a small catalog: its own Redis under ``var_dir``, so its workers share no queue."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "P2W_")) and k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "shop_demo.services", "--", sys.executable, "manage.py", "demo", "--size", "4",
         "--no-serve", "--bind", "127.0.0.1:0"],
        cwd=REPO_DIR, env={**base, "DATABASE_URL": database_url, "P2W_VAR_DIR": str(var_dir),
                           "DJANGO_SETTINGS_MODULE": "shop_demo.settings", **env},
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def models(database_url):
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT m.checksum, m.state, count(e.id) FILTER (WHERE e.state = 'ready') FROM p2w_search_embeddingmodel m "
            "LEFT JOIN p2w_search_imageembedding e ON e.model_id = m.id GROUP BY m.id ORDER BY m.id").fetchall()


def two_demo_starts(tmp_path_factory, test_database_url):
    """The demo started on the shipped weights, then again with others: the models and output after each.

    Run beside the session (tests/nested.py) from its first test: two starts are about 50 s
    of waiting on the demo's processes. Its database is its own, its Redis too (``run_demo``).
    """
    from p2w_search.embedders.openclip import file_sha256

    folder = tmp_path_factory.mktemp("demo-weights")
    with empty_database(test_database_url) as database:
        run_demo(folder / "var", database)
        first = models(database)
        clip, mapping = other_weights(folder / "new")
        output = run_demo(folder / "var", database, P2W_CLIP_PRETRAINED=str(clip), P2W_MAPPING=str(mapping))
        return {"first": first, "output": output, "new": file_sha256(clip), "second": models(database)}


WORK = SESSIONS["test_demo_weights.py"]


@pytest.mark.timeout(WORK.limit + 30)
def test_a_demo_started_with_new_weights_switches_its_searches_to_them(nested_sessions, request):
    from p2w_search.embedders.openclip import file_sha256

    shipped = file_sha256(WEIGHTS / "p2w-demo-small.pt")
    starts = WORK.start(request).wait()
    assert starts["first"] == [(shipped, "serving", 4)]
    new = starts["new"]
    assert f"the demo's CLIP changed: searches now use p2w-demo-small/p2w-demo-small.pt@{new[:12]}" in starts["output"]
    assert [(checksum, state) for checksum, state, _ in starts["second"]] == [(shipped, "retired"), (new, "serving")]
    assert starts["second"][1] == (new, "serving", 4)


def test_a_demo_whose_clip_serves_already_switches_nothing(db):
    """The third start of the test above, in-process (each start is about 20 s): nothing to switch, nothing said."""
    import io

    from p2w_search import indexing
    from shop_demo.catalog.management.commands.demo import Command

    model = indexing.register_model()
    indexing.switch_serving(model, force=True)
    out = io.StringIO()
    Command(stdout=out)._serve_configured_weights()
    assert out.getvalue() == "" and indexing.register_model().state == "serving"

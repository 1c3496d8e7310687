"""The evaluation command on a hand-made gallery whose right answers are known."""

import json

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from p2w_search import evaluation, indexing
from p2w_search.models import ImageEmbedding
from tests.factories import ProductFactory, ProductImageFactory

E = np.eye(32, dtype=np.float32)
# A and B are close, C is between B and nothing, D stands alone.
VECTORS = {"A": E[0], "B": (E[0] + 0.5 * E[1]) / np.linalg.norm(E[0] + 0.5 * E[1]), "C": E[1], "D": E[2]}


@pytest.fixture
def gallery(db, media):
    model = indexing.register_model()
    for sku, vector in VECTORS.items():
        image = ProductImageFactory(product=ProductFactory(sku=sku))
        ImageEmbedding.objects.create(image=image, model=model, state="ready", vector=vector.tolist(), norm=2.0)
    return model


def write(path, rows):
    path.write_text(json.dumps(rows))
    return path


def test_cirr_layout_leaves_the_reference_out(gallery, tmp_path):
    cirr = write(tmp_path / "cap.rc2.test1.json", [
        {"pairid": 0, "reference": "A", "target_hard": "B", "target_soft": {"B": 1.0}, "caption": "x",
         "change": "colour", "held_out": False},
        {"pairid": 1, "reference": "C", "target_hard": "D", "target_soft": {"D": 1.0, "A": 0.5}, "caption": "y",
         "change": "kind", "held_out": True},
    ])
    call_command("p2w_evaluate", cirr=str(cirr), id_field="sku", methods="image_only", out=str(tmp_path / "out"),
                 examples=2)

    result = json.loads((tmp_path / "out" / "results.json").read_text())["recall"]["image_only"]
    # Query 1: A's nearest other product is B (right at rank 1). Query 2: C ranks B, then A and D
    # tie at 0 (A first by id): D is third. A scored 0.5 in target_soft does not count.
    assert result["all"] == {"R@1": 0.5, "R@5": 1.0, "R@10": 1.0, "R@50": 1.0, "n": 2}
    assert result["split=held-out"]["R@1"] == 0.0 and result["split=seen"]["R@1"] == 1.0
    assert result["change=colour"]["n"] == 1
    assert "| image_only | 0.500 | 1.000 | 1.000 | 1.000 | 2 |" in (tmp_path / "out" / "results.md").read_text()
    assert Image.open(tmp_path / "out" / "examples.png").size[1] == 24 + 2 * 96
    rankings = json.loads((tmp_path / "out" / "rankings.json").read_text())
    assert rankings["queries"][1] == {"reference": "C", "text": "y"}
    assert rankings["top10"]["image_only"] == [["B", "C", "D"], ["B", "A", "D"]]


def test_fashioniq_layout_ranks_the_reference_too(gallery, tmp_path):
    folder = tmp_path / "fiq"
    folder.mkdir()
    write(folder / "cap.mug.test.json", [{"candidate": "A", "target": "B", "captions": ["x", "y"]}])
    call_command("p2w_evaluate", fashioniq=str(folder), id_field="sku", methods="image_only",
                 out=str(tmp_path / "out"), examples=0)
    result = json.loads((tmp_path / "out" / "results.json").read_text())["recall"]["image_only"]
    # Two captions make two queries; A itself comes first, B second.
    assert result["all"]["n"] == 2 and result["all"]["R@1"] == 0.0 and result["all"]["R@5"] == 1.0
    assert result["category=mug"]["n"] == 2


def test_unknown_reference_is_reported(gallery, tmp_path):
    cirr = write(tmp_path / "c.json", [{"reference": "Z", "target_hard": "A", "caption": "x"}])
    with pytest.raises(Exception, match="1 references are not in the indexed gallery"):
        call_command("p2w_evaluate", cirr=str(cirr), id_field="sku", methods="image_only", out=str(tmp_path))


def test_recall_counts_any_correct_target():
    rankings = [["b", "c", "a"], ["c", "a", "b"]]
    assert evaluation.recall_at(rankings, [frozenset({"a", "b"}), frozenset({"b"})], ks=(1, 2, 3)) == {
        "R@1": 0.5, "R@2": 0.5, "R@3": 1.0}


def test_products_score_their_best_image():
    vectors = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    ranked = evaluation.rank_products(np.array([[0, 1]], np.float32), vectors, np.array([7, 7, 9]))
    assert ranked == [[7, 9]]
    # A left-out product is dropped from the ranking, not moved to its end.
    assert evaluation.rank_products(np.array([[0, 1]], np.float32), vectors, np.array([7, 7, 9]),
                                    exclude=[7]) == [[9]]

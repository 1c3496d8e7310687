"""The evaluation on hand-made galleries and files whose metrics are computed by hand below.

Products lie on a quarter circle at the angles of a Golomb ruler (every pairwise difference
differs), so each reference ranks every other product without ties, by angular distance.
``image_only`` queries are the reference's own vector, so every ranking below is read off
the angles.
"""

import json
import re

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from p2w_search import evaluation, indexing, ranking_metrics
from p2w_search.models import ImageEmbedding
from tests.factories import ProductFactory, ProductImageFactory

ANGLES = {"A": 0, "B": 2, "C": 8, "D": 18, "E": 30, "F": 44, "G": 64, "H": 68}  # degrees


def vector(angle):
    v = np.zeros(32, dtype=np.float32)
    v[0], v[1] = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    return v


@pytest.fixture
def gallery(db, media):
    model = indexing.register_model()
    for sku, angle in ANGLES.items():
        image = ProductImageFactory(product=ProductFactory(sku=sku))
        ImageEmbedding.objects.create(image=image, model=model, state="ready", vector=vector(angle).tolist(), norm=2.0)
    return model


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def results(out):
    return json.loads((out / "results.json").read_text())


CIRR_PAIRS = [
    # Pair 0, from A (0): B 2, C 8, D 18, E 30, F 44, G 64 -> [B, C, D, E, F, G]; A itself left out,
    # H (68) is not in the split. Target C is 2nd; B, first, is scored 0.5: not correct.
    {"pairid": 0, "reference": "A", "target_hard": "C", "target_soft": {"C": 1.0, "B": 0.5}, "caption": "x",
     "img_set": {"id": 0, "members": ["A", "B", "C", "D", "E", "F"]}, "change": "colour", "held_out": False},
    # Pair 1, from D (18): C 10, E 12, B 16, A 18, F 26, G 46 -> [C, E, B, A, F, G]. Target B is 3rd;
    # C, first, is scored 1.0: a correct product, so the any-correct recall has it at rank 1.
    {"pairid": 1, "reference": "D", "target_hard": "B", "target_soft": {"B": 1.0, "C": 1.0}, "caption": "y",
     "img_set": {"id": 1, "members": ["A", "B", "C", "D", "E"]}, "change": "kind", "held_out": True},
    # Pair 2, from G (64): F 20, E 34, D 46, C 56, B 62, A 64 -> [F, E, D, C, B, A]; H (4 away) would
    # come first if the split's gallery were ignored. Target F is 1st; A, also correct, is 6th.
    {"pairid": 2, "reference": "G", "target_hard": "F", "target_soft": {"F": 1.0, "A": 1.0}, "caption": "z",
     "img_set": {"id": 2, "members": ["B", "C", "D", "E", "F", "G"]}, "change": "colour", "held_out": False},
]


def write_cirr(root, pairs=CIRR_PAIRS, split=("A", "B", "C", "D", "E", "F", "G")):
    write(root / "image_splits" / "split.rc2.val.json", {name: f"./dev/{name}.png" for name in split})
    return write(root / "captions" / "cap.rc2.val.json", pairs)


def test_cirr_counts_target_hard_with_the_reference_left_out(gallery, tmp_path):
    call_command("p2w_evaluate", cirr=str(write_cirr(tmp_path / "cirr")), id_field="sku", methods="image_only",
                 out=str(tmp_path / "out"), examples=2)
    data = results(tmp_path / "out")
    result = data["metrics"]["image_only"]
    assert data["paper_figure"] == "all" and data["galleries"]["cirr"]["products"] == 7
    rankings = json.loads((tmp_path / "out" / "rankings.json").read_text())
    assert rankings["top"]["image_only"] == [list("BCDEFG"), list("CEBAFG"), list("FEDCBA")]
    # Subsets without the reference: pair 0 [B, C, D, E, F] (C 2nd); pair 1 [C 10, E 12, B 16, A 18]
    # (B 3rd); pair 2 [F, E, D, C, B] (F 1st).
    assert rankings["subset"]["image_only"] == [list("BCDEF"), list("CEBA"), list("FEDCB")]
    assert result["all"] == pytest.approx({
        # The paper's R@K, target_hard only: ranks 2, 3, 1.
        "R@1": 1 / 3, "R@5": 1.0, "R@10": 1.0, "R@50": 1.0,
        # Any correct product (target_hard, target_soft at 1.0): first answers B (0.5: no), C (yes), F (yes).
        "R_any@1": 2 / 3, "R_any@5": 1.0, "R_any@10": 1.0, "R_any@50": 1.0,
        # AP@5: pair 0 {C} at 2: (1/2)/1 = 0.5; pair 1 {B, C} at 3 and 1: (1/1 + 2/3)/2 = 5/6;
        # pair 2 {F, A} at 1 and 6: (1/1)/min(5, 2) = 0.5. mAP@5 = (0.5 + 5/6 + 0.5)/3 = 11/18.
        # From K = 10 on A counts: pair 2 (1 + 2/6)/2 = 2/3, mAP = (0.5 + 5/6 + 2/3)/3 = 2/3.
        "mAP@5": 11 / 18, "mAP@10": 2 / 3, "mAP@25": 2 / 3, "mAP@50": 2 / 3,
        # The subsets put the target 2nd, 3rd and 1st.
        "R_subset@1": 1 / 3, "R_subset@2": 2 / 3, "R_subset@3": 1.0,
        "n": 3})
    assert result["split=held-out"]["R@1"] == 0.0 and result["split=held-out"]["R_any@1"] == 1.0
    assert result["split=seen"]["R@1"] == 0.5 and result["split=seen"]["R_any@1"] == 0.5
    assert "| image_only | 0.333 | 1.000 | 1.000 | 1.000 | 0.667 |" in (tmp_path / "out" / "results.md").read_text()
    assert "R_subset@K" in data["metric_names"]
    assert Image.open(tmp_path / "out" / "examples.png").size[1] == 24 + 2 * 96


def test_image_weights_are_scored_on_one_encoding_a_prompt_and_the_best_is_named(gallery, tmp_path, capsys,
                                                                                  monkeypatch):
    from p2w_search.management.commands import p2w_evaluate

    encoded = []
    composed = p2w_evaluate.composed_queries
    monkeypatch.setattr(p2w_evaluate, "composed_queries", lambda *a, **kw: (
        encoded.append(kw["method"]), composed(*a, **kw))[1])
    call_command("p2w_evaluate", cirr=str(write_cirr(tmp_path / "cirr")), id_field="sku", out=str(tmp_path / "out"),
                 methods="pic2word,pic2word_plus_image", prompts="paper,that", image_weights="0,1000,0", examples=0)
    assert encoded == ["pic2word"] * 4  # pic2word once a prompt, and once a prompt for all the weights
    top = json.loads((tmp_path / "out" / "rankings.json").read_text())["top"]
    assert list(top) == ["pic2word[paper]", "pic2word[that]", "pic2word_plus_image[paper,w=0]",
                         "pic2word_plus_image[paper,w=1000]", "pic2word_plus_image[that,w=0]",
                         "pic2word_plus_image[that,w=1000]"]
    assert top["pic2word_plus_image[paper,w=0]"] == top["pic2word[paper]"]  # weight 0 is the paper's method
    assert top["pic2word_plus_image[that,w=0]"] == top["pic2word[that]"]
    # At 1000 the photo outweighs the words: image_only's order, read off the angles above.
    assert top["pic2word_plus_image[paper,w=1000]"] == [list("BCDEFG"), list("CEBAFG"), list("FEDCBA")]
    data = results(tmp_path / "out")
    scores = {w: max(sum(data["metrics"][f"pic2word_plus_image[{p},w={w}]"]["all"][k] for k in ("R_any@1", "R_any@10"))
                     for p in ("paper", "that")) for w in ("0", "1000")}
    assert data["image_weight"]["scores"] == pytest.approx(scores)
    assert scores["1000"] == pytest.approx(2 / 3 + 1)  # image_only's R_any@1 and R_any@10 above
    best = max(["0", "1000"], key=lambda w: scores[w])  # the smaller weight on a tie
    assert data["image_weight"]["weight"] == float(best)
    assert (f"IMAGE_WEIGHT {best} scored best of 0, 1000 on these triplets (R_any@1 + R_any@10 (all): "
            f"{scores[best]:.3f}); to search with it, set P2W_SEARCH['EMBEDDERS']['default']['IMAGE_WEIGHT'] = {best}"
            ) in capsys.readouterr().out


@pytest.mark.parametrize("options, message", [
    ({"image_weights": "0.5,x"}, "--image-weights: 'x' is not a number"),
    ({"image_weights": "-1"}, "--image-weights: -1 is not a finite number of at least 0"),
    ({"image_weights": "nan"}, "--image-weights: nan is not a finite number of at least 0"),
    ({"image_weights": "0.5", "methods": "pic2word"},
     "--image-weights: only pic2word_plus_image has an image weight; add it to --methods"),
])
def test_image_weights_that_cannot_be_scored_are_refused(gallery, tmp_path, options, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("p2w_evaluate", cirr=str(write_cirr(tmp_path / "cirr")), id_field="sku", out=str(tmp_path),
                     **{"methods": "pic2word_plus_image", **options})


def test_cirr_without_a_split_file_ranks_the_whole_catalog(gallery, tmp_path):
    pairs = [{k: v for k, v in pair.items() if k != "img_set"} for pair in CIRR_PAIRS]
    caption_file = write(tmp_path / "cap.rc2.val.json", pairs)
    call_command("p2w_evaluate", cirr=str(caption_file), id_field="sku", methods="image_only",
                 out=str(tmp_path / "out"), examples=0)
    data = results(tmp_path / "out")
    # H (68) is now in the gallery and comes first for pair 2, before its target F: R@1 drops to 0.
    assert data["galleries"]["cirr"] == {"source": "the whole indexed catalog (no split.rc2.val.json)", "products": 8}
    assert data["metrics"]["image_only"]["all"]["R@1"] == 0.0
    assert "R_subset@1" not in data["metrics"]["image_only"]["all"]


FASHIONIQ = {
    # mug gallery A-H. From A (0), the reference kept: A, B, C, D, E, F, G: target G is 7th (the extra
    # targets list B, 2nd). From C (8): C 0, B 6, A 8, D 10: target B is 2nd.
    "mug": ([{"candidate": "A", "target": "G", "captions": ["is red", "has dots"], "targets": ["G", "B"]},
             {"candidate": "C", "target": "B", "captions": ["is blue", "is plain"]}], list(ANGLES)),
    # cap gallery E-H. From E (30): E 0, F 14, G 34, H 38: target H is 4th. Over the whole catalog it
    # would be 8th (E, D 12, F 14, C 22, B 28, A 30, G 34, H 38).
    "cap": ([{"candidate": "E", "target": "H", "captions": ["a", "b"]}], ["E", "F", "G", "H"]),
}


def write_fashioniq(root, categories=FASHIONIQ, split="val"):
    for category, (rows, gallery_names) in categories.items():
        write(root / "json" / f"cap.{category}.{split}.json", rows)
        write(root / "image_splits" / f"split.{category}.{split}.json", gallery_names)
    return root


def test_fashioniq_ranks_each_category_in_its_gallery_and_averages_categories(gallery, tmp_path):
    call_command("p2w_evaluate", fashioniq=str(write_fashioniq(tmp_path / "fashion-iq")), id_field="sku",
                 methods="image_only", out=str(tmp_path / "out"), examples=0)
    data = results(tmp_path / "out")
    result = data["metrics"]["image_only"]
    assert data["paper_figure"] == "category-mean"
    assert {name: g["products"] for name, g in data["galleries"].items()} == {"cap": 4, "mug": 8}
    rankings = json.loads((tmp_path / "out" / "rankings.json").read_text())
    # One query per triplet; its two captions joined as the authors' code does: second, then first.
    assert [q["text"] for q in rankings["queries"]] == ["b and a", "has dots and is red", "is plain and is blue"]
    assert rankings["top"]["image_only"][0] == list("EFGH")  # the reference stays, first
    # R@5, target only: cap 1/1 (rank 4), mug 1/2 (ranks 7 and 2). The paper's figure is the mean of
    # the categories, (1 + 0.5)/2 = 0.75, not the pooled 2/3.
    assert result["category=cap"]["R@5"] == 1.0 and result["category=mug"]["R@5"] == 0.5
    assert result["category-mean"]["R@5"] == 0.75 and result["all"]["R@5"] == pytest.approx(2 / 3)
    assert result["category-mean"]["n"] == 3
    # Any correct: A's listed B is 2nd, so mug is 2/2 and the mean 1.0. The reference is first: R@1 is 0.
    assert result["category-mean"]["R_any@5"] == 1.0 and result["category-mean"]["R@1"] == 0.0
    assert "**category-mean** (the paper's figure)" in (tmp_path / "out" / "results.md").read_text()


def test_fashioniq_needs_one_split_and_two_captions(gallery, tmp_path):
    root = write_fashioniq(tmp_path / "fiq")
    write_fashioniq(root, {"cap": FASHIONIQ["cap"]}, split="test")
    with pytest.raises(CommandError, match="has the splits test, val; choose one"):
        call_command("p2w_evaluate", fashioniq=str(root), id_field="sku", methods="image_only", out=str(tmp_path))
    call_command("p2w_evaluate", fashioniq=str(root), split="test", id_field="sku", methods="image_only",
                 out=str(tmp_path / "out"), examples=0)
    assert results(tmp_path / "out")["queries"] == 1
    write(root / "json" / "cap.cap.test.json", [{"candidate": "E", "target": "H", "captions": ["a", "b", "c"]}])
    with pytest.raises(CommandError, match=r"cap.cap.test.json, triplet 0: expected two captions \(or one\), got 3"):
        call_command("p2w_evaluate", fashioniq=str(root), split="test", id_field="sku", methods="image_only",
                     out=str(tmp_path))
    write(root / "json" / "cap.cap.test.json", [{"candidate": "E", "captions": ["a", "b"]}])
    with pytest.raises(CommandError, match=r"cap.cap.test.json, triplet 0: no 'target'"):
        call_command("p2w_evaluate", fashioniq=str(root), split="test", id_field="sku", methods="image_only",
                     out=str(tmp_path))


def test_files_that_the_official_protocol_cannot_score_are_refused(gallery, tmp_path):
    test1 = write(tmp_path / "cap.rc2.test1.json", [{"pairid": 0, "reference": "A", "caption": "x"}])
    with pytest.raises(CommandError, match="no 'target_hard' .*CIRR evaluation server"):
        call_command("p2w_evaluate", cirr=str(test1), id_field="sku", methods="image_only", out=str(tmp_path))
    outside = write_cirr(tmp_path / "c", pairs=[{"reference": "A", "target_hard": "H", "caption": "x"}])
    with pytest.raises(CommandError, match=r"its target H is not in its gallery \(.*split.rc2.val.json\)"):
        call_command("p2w_evaluate", cirr=str(outside), id_field="sku", methods="image_only", out=str(tmp_path))
    member = write_cirr(tmp_path / "m", pairs=[{"reference": "A", "target_hard": "B", "caption": "x",
                                                 "img_set": {"id": 0, "members": ["A", "B", "H"]}}])
    with pytest.raises(CommandError, match=r"its img_set member H is not in its gallery"):
        call_command("p2w_evaluate", cirr=str(member), id_field="sku", methods="image_only", out=str(tmp_path))
    itself = write(tmp_path / "i.json", [{"reference": "A", "target_hard": "A", "caption": "x"}])
    with pytest.raises(CommandError, match="its target is its reference A, which the ranking leaves out"):
        call_command("p2w_evaluate", cirr=str(itself), id_field="sku", methods="image_only", out=str(tmp_path))
    unknown = write(tmp_path / "c.json", [{"reference": "Z", "target_hard": "A", "caption": "x"}])
    with pytest.raises(CommandError, match=r"1 references are not in the indexed catalog, e.g. \['Z'\]"):
        call_command("p2w_evaluate", cirr=str(unknown), id_field="sku", methods="image_only", out=str(tmp_path))


def test_recall_counts_only_the_listed_target_and_any_correct_counts_all():
    rankings = [["b", "c", "a"], ["c", "a", "b"]]
    # Row 1's target a is 3rd, its other correct product b 1st; row 2's only correct product b is 3rd.
    assert ranking_metrics.recall_at(rankings, ["a", "b"], ks=(1, 3)) == {"R@1": 0.0, "R@3": 1.0}
    assert ranking_metrics.recall_any_at(rankings, [frozenset("ab"), frozenset("b")], ks=(1, 3)) == {
        "R_any@1": 0.5, "R_any@3": 1.0}


def test_average_precision_by_hand():
    # Correct at ranks 1, 3, 5 of three: P@1 = 1, P@3 = 2/3, P@5 = 3/5; AP@5 = (1 + 2/3 + 3/5)/3 = 34/45.
    assert ranking_metrics.average_precision_at(list("axbyc"), set("abc"), 5) == pytest.approx(34 / 45)
    # At K = 2 only rank 1 counts, over min(2, 3) = 2: 1/2.
    assert ranking_metrics.average_precision_at(list("axbyc"), set("abc"), 2) == 0.5
    # More correct products than K: five of six found in the top 5 is a perfect AP@5 (divided by min(5, 6)).
    assert ranking_metrics.average_precision_at(list("abcde"), set("abcdef"), 5) == 1.0
    # One correct product at rank 2: AP = 1/2 at any K >= 2. mAP@5 = (34/45 + 1/2)/2 = 113/180.
    assert ranking_metrics.map_at([list("axbyc"), list("xa")], [set("abc"), {"a"}], ks=(5,)) == {
        "mAP@5": pytest.approx(113 / 180)}
    with pytest.raises(ValueError, match="at least one correct product"):
        ranking_metrics.average_precision_at(["a"], set(), 1)


def test_fashioniq_captions_join_in_the_authors_order():
    assert evaluation.fashioniq_text(["is red", "has dots"]) == "has dots and is red"
    assert evaluation.fashioniq_text(["is red"]) == "is red"


def test_products_score_their_best_image():
    # Product 7 has two images, not next to each other: 0.8 and 1.0 against the query; product 9 has 0.96.
    # The best image ranks 7 first (its first image alone, or the mean 0.9, would put 9 first).
    vectors = np.array([[1, 0], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)
    query = np.array([[0.8, 0.6]], np.float32)
    assert evaluation.rank_products(query, vectors, np.array([7, 9, 7])) == [[7, 9]]
    # A left-out product is dropped from the ranking, not moved to its end.
    assert evaluation.rank_products(query, vectors, np.array([7, 9, 7]), exclude=[7]) == [[9]]

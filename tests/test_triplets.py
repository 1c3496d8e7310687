"""The demo's triplets in the official CIRR and FashionIQ layouts, read back by the evaluation's loaders."""

import io
import json
from collections import Counter
from dataclasses import fields

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from p2w_search import evaluation
from shop_demo.catalog import generator, triplets


@pytest.fixture(scope="module")
def catalog():
    products = generator.generate_products(1000, seed=0)
    return products, triplets.make_triplets(products, seed=1)


def differing(a, b):
    return [f.name for f in fields(a) if getattr(a, f.name) != getattr(b, f.name)]


def test_the_demo_benchmark_keeps_its_triplets(catalog):
    # The second captions and image sets draw from streams of their own: the triplets behind the
    # README's tables (references, changes, texts, targets) stay what they were.
    products, rows = catalog
    assert len(rows) == 1999 and sum(t.held_out for t in rows) == 406
    assert (rows[0].reference, rows[0].change, rows[0].text, rows[0].targets) == (
        "DEMO-00001", "colour", "change the colour to orange", ("DEMO-00382",))
    assert (rows[5].reference, rows[5].text, rows[5].targets) == (
        "DEMO-00003", "with a circle print", ("DEMO-00002", "DEMO-00828"))


@pytest.mark.parametrize("change, current, value, edit", [
    ("print", "star", "none", "removal"),
    ("pattern", "stripes", "solid", "removal"),
    ("print", "none", "heart", "addition"),
    ("pattern", "solid", "dots", "addition"),
    ("print", "star", "heart", "replacement"),
    ("pattern", "dots", "checks", "replacement"),
    ("colour", "black", "orange", "replacement"),
    ("kind", "mug", "cap", "replacement"),
])
def test_each_change_says_what_it_does_to_the_attribute(change, current, value, edit):
    assert triplets.edit_of(change, current, value) == edit


def test_the_demo_benchmark_counts_its_removals_and_additions(catalog, tmp_path):
    products, rows = catalog
    by_edit = Counter((t.edit, t.held_out) for t in rows)
    assert by_edit == {("replacement", False): 1326, ("replacement", True): 338, ("removal", False): 140,
                       ("removal", True): 33, ("addition", False): 127, ("addition", True): 35}
    removals = {t.text for t in rows if t.edit == "removal"}
    assert "remove the print" in removals and "make it plain" in removals and "in red" not in removals
    benchmark = evaluation.load_cirr(triplets.write_cirr(rows, products, tmp_path / "cirr"))
    assert Counter(q.groups["edit"] for q in benchmark.queries) == {"replacement": 1664, "removal": 173,
                                                                    "addition": 162}


def test_fashioniq_files_have_two_phrasings_and_a_gallery_per_kind(catalog, tmp_path):
    products, rows = catalog
    files = triplets.write_fashioniq(rows, products, tmp_path / "fashion-iq")
    kinds = {p.sku: p.attributes.kind for p in products}
    assert sorted(f.name for f in files) == sorted(f"cap.{kind}.val.json" for kind in generator.KINDS)
    written = 0
    for path in files:
        kind = path.name.split(".")[1]
        gallery = json.loads((tmp_path / "fashion-iq" / "image_splits" / f"split.{kind}.val.json").read_text())
        assert sorted(gallery) == sorted(sku for sku, k in kinds.items() if k == kind)
        for row in json.loads(path.read_text()):
            written += 1
            first, second = row["captions"]  # what the authors' loader reads: captions[0] and captions[1]
            assert first != second and row["change"] != "kind"
            assert row["target"] == row["targets"][0] and row["target"] in gallery and row["candidate"] in gallery
            assert row["edit"] in triplets.EDITS
    assert written == sum(t.change != "kind" for t in rows) == 1382
    benchmark = evaluation.load_fashioniq(tmp_path / "fashion-iq")
    assert len(benchmark.queries) == 1382 and benchmark.headline == "category-mean"
    assert benchmark.resolved(kinds).galleries["mug"] == frozenset(s for s, k in kinds.items() if k == "mug")


def test_cirr_file_has_the_benchmarks_fields_and_image_sets(catalog, tmp_path):
    products, rows = catalog
    path = triplets.write_cirr(rows, products, tmp_path / "cirr")
    assert path == tmp_path / "cirr" / "captions" / "cap.rc2.val.json"
    split = json.loads((tmp_path / "cirr" / "image_splits" / "split.rc2.val.json").read_text())
    assert len(split) == 1000 and split["DEMO-00001"] == "./dev/DEMO-00001.png"
    attributes = {p.sku: p.attributes for p in products}
    written = json.loads(path.read_text())
    for row, t in zip(written, rows, strict=True):
        assert {"pairid", "reference", "target_hard", "target_soft", "caption", "img_set"} <= row.keys()
        members = row["img_set"]["members"]
        assert row["reference"] in members and row["target_hard"] in members and len(set(members)) == len(members)
        target = attributes[row["target_hard"]]
        for other in set(members) - {row["reference"], row["target_hard"]}:
            # A look-alike: one attribute away from the target, so never a correct product.
            assert len(differing(attributes[other], target)) == 1 and other not in t.targets
    assert sum(len(row["img_set"]["members"]) == 6 for row in written) >= 1990
    benchmark = evaluation.load_cirr(path).resolved(attributes)
    assert [q.target for q in benchmark.queries] == [t.targets[0] for t in rows]
    assert [q.correct for q in benchmark.queries] == [frozenset(t.targets) for t in rows]


def test_fashioniq_needs_two_captions(tmp_path):
    products = generator.generate_products(50, seed=0)
    row = next(t for t in triplets.make_triplets(products, seed=1) if t.change != "kind")
    with pytest.raises(ValueError, match="FashionIQ needs two captions, got 0"):
        triplets.write_fashioniq([triplets.Triplet(**{**row.__dict__, "captions": ()})], products, tmp_path)


def test_the_readmes_table_has_a_column_for_each_change_and_each_edit():
    from shop_demo.catalog.management.commands.evaluate_demo import _summary

    groups = ["all", "split=seen", "split=held-out", *(f"change={c}" for c in triplets.CHANGES),
              *(f"edit={e}" for e in triplets.EDITS)]
    counts = {"edit=replacement": 1664, "edit=addition": 162, "edit=removal": 173, "split=seen": 1593,
              "split=held-out": 406}
    metrics = {g: {"R_any@1": 0.25, "R_any@10": 0.5, "R_any@50": 0.75, "R@1": 0.2, "R@10": 0.4, "R@50": 0.6,
                   "mAP@10": 0.3, "R_subset@1": 0.6, "n": counts.get(g, 1)} for g in groups}
    metrics["edit=removal"] = {**metrics["edit=removal"], "R_any@10": 0.125}
    fiq = {"category-mean": {"R@10": 0.8, "R@50": 0.9, "R_any@10": 0.85}}
    text = _summary({"metrics": {"pic2word": metrics}, "queries": 1999},
                    {"metrics": {"pic2word": fiq}, "queries": 1382})

    header = next(line for line in text.splitlines() if line.startswith("| method | seen R_any@1"))
    assert header.endswith("| print R_any@10 | replacement R_any@10 | addition R_any@10 | removal R_any@10 |")
    assert "| pic2word | 0.250 | 0.500 | 0.750 | 0.250 | 0.500 | 0.750 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | " \
           "0.500 | 0.125 |" in text
    assert "1593 seen and 406 held-out queries (CIRR layout); by what the change does: 1664 replacements, " \
           "162 additions, 173 removals." in text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", ["evaluate_demo", "evaluate_chained"])
def test_the_evaluation_refuses_a_database_that_holds_another_seeds_catalog(tmp_path, command):
    """Every seed's products are DEMO-00001..., so a catalog loaded for one seed would be scored
    against the next seed's triplets."""
    call_command("load_demo_catalog", size=6, seed=1, stdout=io.StringIO())
    out = io.StringIO()
    call_command("load_demo_catalog", size=6, seed=1, exact=True, stdout=out)  # its own seed: loaded, not refused
    assert out.getvalue() == "demo catalog: 6 products already loaded\n"
    expected = generator.generate_products(6, seed=2)[0].title
    with pytest.raises(CommandError, match=f"DEMO-00001 is .* not '{expected}' as in the catalog of seed 2"):
        call_command(command, size=6, seed=2, out=str(tmp_path), stdout=io.StringIO())

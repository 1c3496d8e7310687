"""The attribute diagnosis of composed queries' first answers, on hand-made products."""

from shop_demo.catalog import diagnosis
from shop_demo.catalog.generator import Attributes
from shop_demo.catalog.triplets import Triplet

ATTRIBUTES = {
    "ref": Attributes("mug", "red", "solid", "none"),
    "target": Attributes("mug", "blue", "solid", "none"),
    "blue-cap": Attributes("cap", "blue", "solid", "none"),  # applied the change, lost the kind
    "red-mug-dots": Attributes("mug", "red", "dots", "none"),  # did not apply, lost the pattern
}


def triplet(change, target="target"):
    return Triplet(reference="ref", change=change, text="in blue", targets=(target,), held_out=False,
                   category="mug")


def test_each_answer_is_scored_on_the_change_and_on_what_it_kept():
    rows = [triplet("colour"), triplet("colour"), triplet("colour")]
    result = diagnosis.diagnose(rows, ["target", "blue-cap", "red-mug-dots"], ATTRIBUTES)
    colour = result["colour"]
    assert colour["n"] == 3
    assert colour["applied"] == 2 / 3
    assert colour["kept kind"] == 2 / 3 and colour["kept pattern"] == 2 / 3 and colour["kept print"] == 1.0
    assert "kept colour" not in colour  # the changed attribute is not expected to stay
    assert result["all"]["applied"] == 2 / 3


def test_all_counts_kept_attributes_only_over_queries_that_keep_them():
    pattern_target = Attributes("mug", "red", "dots", "none")
    attributes = {**ATTRIBUTES, "dotted": pattern_target}
    rows = [triplet("colour"), triplet("pattern", target="dotted")]
    result = diagnosis.diagnose(rows, ["blue-cap", "red-mug-dots"], attributes)
    assert result["pattern"]["applied"] == 1.0 and result["pattern"]["kept colour"] == 1.0
    # colour is kept in 1 of the 1 queries that should keep it (the pattern one), pattern in 1 of 1.
    assert result["all"]["kept colour"] == 1.0
    assert result["all"]["kept kind"] == 0.5
    table = diagnosis.markdown({"m": result}, group="colour")
    assert table.splitlines()[0] == "| method | applied | kept kind | kept pattern | kept print | queries |"
    assert table.splitlines()[2] == "| m | 1.000 | 0.000 | 1.000 | 1.000 | 1 |"

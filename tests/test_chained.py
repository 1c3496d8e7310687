"""Two changes in a row on the synthetic catalog: the triplets, the ways of chaining, and what they measure."""

import numpy as np
import pytest

from p2w_search.shopper import journey
from shop_demo.catalog import chained, generator
from shop_demo.catalog.generator import Attributes
from shop_demo.catalog.triplets import _phrases


def product(index, kind, colour, pattern, print_="none"):
    return generator.make_product(index, Attributes(kind, colour, pattern, print_), seed=0)


def test_a_two_change_triplet_asks_two_attributes_that_some_product_has_together():
    reference = product(0, "mug", "red", "solid")
    both = product(1, "mug", "blue", "stripes")
    one = product(2, "mug", "blue", "solid")  # the first change only: no two-change target from the reference
    triplets = chained.make_chained_triplets([reference, both, one], seed=0, per_product=10)
    from_reference = sorted((t.changes, t.values, t.targets) for t in triplets if t.reference == reference.sku)
    assert from_reference == [(("colour", "pattern"), ("blue", "stripes"), (both.sku,)),
                              (("pattern", "colour"), ("stripes", "blue"), (both.sku,))]
    for t in triplets:
        assert t.texts[0] in _phrases(t.changes[0], t.values[0]) and t.texts[1] in _phrases(t.changes[1], t.values[1])
    # from "both": back to red and solid is the reference itself
    assert {t.targets for t in triplets if t.reference == both.sku} == {(reference.sku,)}
    # from "one" (blue, solid): a second attribute changed too would need another colour with stripes: none
    assert [t for t in triplets if t.reference == one.sku] == []


def test_two_change_triplets_are_drawn_the_same_for_a_seed_and_differently_for_another():
    products = generator.generate_products(300, seed=0)
    first = chained.make_chained_triplets(products, seed=1, per_product=2)
    assert first == chained.make_chained_triplets(products, seed=1, per_product=2)
    assert first != chained.make_chained_triplets(products, seed=2, per_product=2)
    by_attributes = {}
    for p in products:
        by_attributes.setdefault(p.attributes, []).append(p.sku)
    attributes = {p.sku: p.attributes for p in products}
    for t in first:
        ref = attributes[t.reference]
        assert t.changes[0] != t.changes[1]
        assert all(getattr(ref, c) != v for c, v in zip(t.changes, t.values))
        target = {**ref.__dict__, **dict(zip(t.changes, t.values))}
        assert t.targets == tuple(sorted(by_attributes[Attributes(**target)]))
        assert t.held_out == generator.is_held_out(Attributes(**target))


def test_one_sentence_joins_the_changes_in_the_order_asked():
    assert chained.one_sentence(["in red ", " with stripes"]) == "in red and with stripes"
    assert chained.one_sentence(["in red", "with stripes", "as a mug"], joiner=" , ") == (
        "in red , with stripes , as a mug")


class RecordingEmbedder:
    """compose(): the image features plus a fixed vector per text, normalised; records what it was asked."""

    def __init__(self, dim=4):
        self.dim, self.calls = dim, []

    def _text(self, text):
        return np.random.default_rng(sum(map(ord, text))).normal(size=self.dim).astype(np.float32)

    def compose(self, features, texts, *, template):
        self.calls.append(list(texts))
        rows = np.asarray(features, np.float32) + np.stack([self._text(t) for t in texts])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class Gallery:
    def __init__(self, vectors, names):
        self.vectors = np.asarray(vectors, np.float32)
        self.product_names = np.asarray(names)

    def features(self, name):
        return self.vectors[list(self.product_names).index(name)]


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    gallery = Gallery(vectors, [f"P{i}" for i in range(6)])
    triplets = [chained.ChainedTriplet(reference=f"P{i}", changes=("colour", "pattern"), values=("red", "stripes"),
                                       texts=("in red", "with stripes"), targets=("P5",), held_out=False)
                for i in range(3)]
    return gallery, triplets


def test_on_first_result_composes_the_second_change_on_the_first_answer(small):
    gallery, triplets = small
    embedder = RecordingEmbedder()
    rankings, references = chained.chained_rankings(embedder, triplets, gallery, chain="on_first_result", top=5)
    assert embedder.calls == [["in red"] * 3, ["with stripes"] * 3]
    first = RecordingEmbedder().compose(np.stack([gallery.features(t.reference) for t in triplets]), ["in red"] * 3,
                                        template="")
    for i, t in enumerate(triplets):
        order = [f"P{j}" for j in np.argsort(-(gallery.vectors @ first[i]), kind="stable") if f"P{j}" != t.reference]
        assert references[i] == order[0]  # the second search's reference is the first search's best answer
        assert references[i] not in rankings[i] and len(rankings[i]) == 5


def test_one_sentence_composes_both_changes_on_the_reference(small):
    gallery, triplets = small
    embedder = RecordingEmbedder()
    rankings, references = chained.chained_rankings(embedder, triplets, gallery, chain="one_sentence", top=5)
    assert embedder.calls == [["in red and with stripes"] * 3]
    assert references == ["P0", "P1", "P2"]
    chained.chained_rankings(embedder, triplets, gallery, chain="one_sentence_comma", top=5)
    assert embedder.calls[-1] == [journey.chained_change(["in red", "with stripes"])] * 3 == [
        "in red , with stripes"] * 3
    assert all(t.reference not in ranking for t, ranking in zip(triplets, rankings))
    with pytest.raises(ValueError, match="unknown chain 'sideways'"):
        chained.chained_rankings(embedder, triplets, gallery, chain="sideways")


def test_measure_counts_targets_and_what_the_first_answer_kept():
    products = [product(0, "mug", "red", "solid"), product(1, "mug", "blue", "stripes"),
                product(2, "mug", "blue", "solid"), product(3, "cap", "blue", "stripes")]
    attributes = {p.sku: p.attributes for p in products}
    triplet = chained.ChainedTriplet(reference=products[0].sku, changes=("colour", "pattern"),
                                     values=("blue", "stripes"), texts=("in blue", "with stripes"),
                                     targets=(products[1].sku,), held_out=True)
    rankings = [[products[2].sku, products[1].sku], [products[3].sku, products[2].sku]]
    result = chained.measure(rankings, [triplet, triplet], attributes)
    assert result["all"]["R_any@1"] == 0.0 and result["all"]["R_any@10"] == 0.5
    assert result["all"]["first kept"] == 1.0  # both first answers are blue
    assert result["all"]["second applied"] == 0.5  # one of them striped
    assert result["all"]["others kept"] == 0.5  # the cap lost the kind
    assert result["held-out"]["n"] == 2 and result["seen"]["n"] == 0

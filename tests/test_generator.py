"""Tests for the synthetic demo catalogue generator (no Django, no DB)."""

from __future__ import annotations

import dataclasses
import itertools
import re
from decimal import Decimal

import numpy as np
import pytest

from shop_demo.catalog.generator import (
    ATTRIBUTE_WORDS,
    COLOURS,
    KINDS,
    PATTERNS,
    PRINTS,
    Attributes,
    SyntheticProduct,
    captions_for,
    generate_products,
    render,
    silhouette_mask,
)


def _with(product: SyntheticProduct, **attrs: str) -> SyntheticProduct:
    """Same product (same index, hence same nuisance) with other attributes."""
    return dataclasses.replace(product, attributes=dataclasses.replace(product.attributes, **attrs))


def _mentions(text: str, field: str, value: str) -> bool:
    return any(re.search(r"\b" + re.escape(stem), text, re.IGNORECASE)
               for stem in ATTRIBUTE_WORDS[field][value])


@pytest.fixture(scope="module")
def products() -> list[SyntheticProduct]:
    return generate_products(300, seed=0)


def test_vocabularies():
    assert len(KINDS) >= 8 and {"t-shirt", "dress", "trousers", "sneaker", "boot",
                                "handbag", "cap", "mug"} <= set(KINDS)
    assert len(COLOURS) >= 10
    for rgb in COLOURS.values():
        assert len(rgb) == 3 and all(0 <= c <= 255 for c in rgb)
    # Colours are well separated.
    for a, b in itertools.combinations(COLOURS.values(), 2):
        assert np.linalg.norm(np.subtract(a, b)) > 60
    assert set(PATTERNS) == {"solid", "stripes", "dots", "checks"}
    assert set(PRINTS) == {"none", "star", "heart", "circle"}


def test_metadata_determinism(products):
    again = generate_products(300, seed=0)
    assert again == products
    # Product i depends only on (seed, i): a shorter run is a prefix.
    assert generate_products(20, seed=0) == products[:20]
    other = generate_products(300, seed=1)
    assert [p.attributes for p in other] != [p.attributes for p in products]


def test_metadata_fields(products):
    assert products[0].sku == "DEMO-00001"
    assert len({p.sku for p in products}) == len(products)
    for i, p in enumerate(products):
        assert p.index == i
        assert re.fullmatch(r"DEMO-\d{5}", p.sku)
        assert p.category == p.attributes.kind
        assert isinstance(p.price, Decimal) and p.price > 0
        assert p.price.as_tuple().exponent == -2
        assert p.title and p.title[0].isupper()
        assert p.description.endswith(".") and p.description.count(".") == 1
        a = p.attributes
        assert a.kind in p.title and a.colour in p.title.lower()
        if a.print != "none":
            assert f"{a.print} print" in p.title
        assert len(p.captions) >= 3 and len(set(p.captions)) == len(p.captions)
    in_stock = np.mean([p.in_stock for p in products])
    assert 0.75 < in_stock < 0.95
    # Price is plausible per kind: mugs are cheaper than boots on average.
    by_kind = {k: np.mean([float(p.price) for p in products if p.category == k]) for k in KINDS}
    assert by_kind["mug"] < by_kind["t-shirt"] < by_kind["boot"]


def test_title_example():
    p = next(p for p in generate_products(500)
             if p.attributes == Attributes("t-shirt", "red", "stripes", "star"))
    assert p.title == "Red striped t-shirt with star print"


def test_all_attribute_values_covered(products):
    assert {p.attributes.kind for p in products} == set(KINDS)
    assert {p.attributes.colour for p in products} == set(COLOURS)
    assert {p.attributes.pattern for p in products} == set(PATTERNS)
    assert {p.attributes.print for p in products} == set(PRINTS)


def test_captions_mention_attributes(products):
    for p in products:
        a = p.attributes
        for cap in p.captions:
            assert _mentions(cap, "kind", a.kind), cap
            assert _mentions(cap, "colour", a.colour), cap
            assert _mentions(cap, "pattern", a.pattern), cap
            if a.print != "none":
                assert _mentions(cap, "print", a.print), cap
            else:
                assert not any(_mentions(cap, "print", x) for x in PRINTS if x != "none"), cap
    words = " ".join(c for p in products for c in p.captions)
    for synonym in ("tee", "trainer", "plaid", "polka dots", "pants"):
        assert synonym in words


def test_captions_for_deterministic():
    a = Attributes("sneaker", "blue", "dots", "heart")
    c1 = captions_for(a, np.random.default_rng(3))
    c2 = captions_for(a, np.random.default_rng(3))
    assert c1 == c2 and len(c1) >= 3
    assert any("blue" in c for c in c1)


def test_render_size_and_mode(products):
    img = render(products[0])
    assert img.size == (64, 64) and img.mode == "RGB"
    big = render(products[0], size=96)
    assert big.size == (96, 96) and big.mode == "RGB"
    assert silhouette_mask(products[0], 0, 96, 0).shape == (96, 96)


def test_render_determinism(products):
    for p in products[:10]:
        a = np.asarray(render(p, seed=0))
        b = np.asarray(render(p, seed=0))
        assert np.array_equal(a, b)
        assert not np.array_equal(a, np.asarray(render(p, seed=1)))
        assert not np.array_equal(a, np.asarray(render(p, seed=0, variant=1)))
        assert np.array_equal(np.asarray(render(p, variant=2)), np.asarray(render(p, variant=2)))
    # Re-generated products render identically too.
    again = generate_products(5, seed=0)
    for p, q in zip(products[:5], again):
        assert np.array_equal(np.asarray(render(p)), np.asarray(render(q)))


def test_variants_change_nuisance_not_silhouette_kind(products):
    p = products[0]
    masks = [silhouette_mask(p, 0, 64, v) for v in range(4)]
    assert any(not np.array_equal(masks[0], m) for m in masks[1:])
    for m in masks:
        assert 0.08 < m.mean() < 0.8  # a sizeable, not full-frame, silhouette


@pytest.mark.parametrize("colour", list(COLOURS))
def test_colour_dominant_in_silhouette(products, colour):
    target = np.array(COLOURS[colour], dtype=float)
    for i, p in enumerate(products[:2 * len(KINDS)]):  # every kind, varied nuisance
        q = _with(p, kind=KINDS[i % len(KINDS)], colour=colour, pattern="solid", print="none")
        kind = q.attributes.kind
        for variant in (0, 1):
            img = np.asarray(render(q, variant=variant)).astype(float)
            mask = silhouette_mask(q, 0, 64, variant)
            med = np.median(img[mask], axis=0)
            assert np.abs(med - target).max() < 45, (kind, variant, med, target)
            # ...and nearer to the named colour than to any other colour.
            nearest = min(COLOURS, key=lambda c: np.linalg.norm(med - COLOURS[c]))
            assert nearest == colour, (kind, variant, med, nearest)


def test_patterned_product_keeps_its_colour(products):
    """With a pattern the named colour is still the plurality colour of the silhouette."""
    names = list(COLOURS)
    palette = np.array([COLOURS[c] for c in names], dtype=float)
    failures, total = [], 0
    for p in products[:12]:
        for pattern in ("stripes", "dots", "checks"):
            for colour in names:
                q = _with(p, colour=colour, pattern=pattern, print="none")
                px = np.asarray(render(q)).astype(float)[silhouette_mask(q)]
                nearest = np.argmin(((px[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
                dominant = names[np.bincount(nearest, minlength=len(names)).argmax()]
                total += 1
                if dominant != colour:
                    failures.append((p.index, p.attributes.kind, pattern, colour, dominant))
    assert len(failures) <= 0.03 * total, failures


def test_attributes_change_pixels(products):
    p = _with(products[7], kind="t-shirt", colour="green", pattern="solid", print="none")
    base = np.asarray(render(p)).astype(int)
    for change in ({"pattern": "stripes"}, {"pattern": "dots"}, {"pattern": "checks"},
                   {"print": "star"}, {"print": "heart"}, {"print": "circle"}, {"colour": "red"}):
        other = np.asarray(render(_with(p, **change))).astype(int)
        assert np.abs(other - base).sum(axis=2).max() > 100, change
    # Prints differ from each other.
    star, heart, circle = (np.asarray(render(_with(p, print=x))).astype(int)
                           for x in ("star", "heart", "circle"))
    assert np.abs(star - heart).sum() > 0 and np.abs(heart - circle).sum() > 0


def test_kinds_have_distinct_silhouettes(products):
    for p in products[:12]:
        variant = p.index % 3
        masks = {k: silhouette_mask(_with(p, kind=k), 0, 64, variant) for k in KINDS}
        for a, b in itertools.combinations(KINDS, 2):
            iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
            assert iou < 0.8, (a, b, iou)


def test_same_nuisance_is_attribute_independent(products):
    # Same index and variant -> identical background far from the product.
    p = products[5]
    a = np.asarray(render(_with(p, colour="red"))).astype(int)
    b = np.asarray(render(_with(p, colour="blue"))).astype(int)
    m = silhouette_mask(p)
    assert (np.abs(a - b).sum(axis=2)[~m] == 0).mean() > 0.9

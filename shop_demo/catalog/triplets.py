"""Composed-retrieval triplets over the synthetic catalog, with their ground truth.

A triplet is a reference product, a modification text ("in red", "with polka dots",
"as a sneaker", "with a star print") and every product of the catalog whose attributes
are exactly the reference's with that one change. A triplet is *held out* when its target
combination is held out of all training (``generator.is_held_out``): those measure how
the models compose what they have never seen together.

Written in the layouts of the two benchmarks the paper reports:
- FashionIQ: ``cap.<category>.<split>.json``, a list of ``{"candidate", "target", "captions"}``;
- CIRR: ``cap.rc2.<split>.json``, a list of ``{"pairid", "reference", "target_hard", "target_soft", "caption"}``.
Identifiers are product SKUs. Several products may satisfy a triplet; the first is the
``target`` / ``target_hard``, and all of them are listed (``"targets"`` in the FashionIQ
layout, an extra key; ``target_soft`` with score 1.0 in CIRR's own way).
"""

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from shop_demo.catalog import generator

__all__ = ["CHANGES", "Triplet", "make_triplets", "write_fashioniq", "write_cirr"]

CHANGES = ("colour", "pattern", "kind", "print")

_PATTERN_WORDS = {
    "solid": ("plain, without a pattern", "in a solid colour", "make it plain"),
    "stripes": ("with stripes", "make it striped", "striped instead"),
    "dots": ("with polka dots", "make it dotted", "with dots instead"),
    "checks": ("with checks", "in a checked pattern", "make it plaid"),
}


def _phrases(change, value):
    if change == "colour":
        return (f"in {value}", f"make it {value}", f"change the colour to {value}", f"{value} instead",
                f"the same but {value}")
    if change == "pattern":
        return _PATTERN_WORDS[value]
    if change == "kind":
        article = "" if value == "trousers" else "a "
        return (f"as {article}{value}", f"make it {article}{value}", f"the same style on {article}{value}")
    if value == "none":
        return ("without the print", "remove the print", "with no print")
    return (f"with a {value} print", f"add a {value}", f"with a {value} on it")


@dataclass(frozen=True)
class Triplet:
    reference: str  # sku
    change: str  # one of CHANGES
    text: str
    targets: tuple  # skus, sorted
    held_out: bool
    category: str  # the reference's kind


def make_triplets(products, *, seed=0, per_product=2):
    """Return triplets for ``products``: up to ``per_product`` changes per reference.

    Only changes that some other product satisfies become triplets. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    by_attributes = defaultdict(list)
    for product in products:
        by_attributes[product.attributes].append(product.sku)
    values = {"colour": list(generator.COLOURS), "pattern": list(generator.PATTERNS),
              "kind": list(generator.KINDS), "print": list(generator.PRINTS)}
    triplets = []
    for product in products:
        options = []
        for change in CHANGES:
            current = getattr(product.attributes, change)
            for value in values[change]:
                target = replace(product.attributes, **{change: value})
                if value != current and by_attributes.get(target):
                    options.append((change, value, target))
        for pick in rng.permutation(len(options))[:per_product]:
            change, value, target = options[pick]
            phrases = _phrases(change, value)
            triplets.append(Triplet(
                reference=product.sku, change=change, text=phrases[int(rng.integers(len(phrases)))],
                targets=tuple(sorted(by_attributes[target])), held_out=generator.is_held_out(target),
                category=product.attributes.kind,
            ))
    return triplets


def write_fashioniq(triplets, folder, *, split="test"):
    """Write one ``cap.<category>.<split>.json`` per reference kind; return the files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_category = defaultdict(list)
    for t in triplets:
        by_category[t.category].append({
            "candidate": t.reference, "target": t.targets[0], "captions": [t.text],
            "targets": list(t.targets), "change": t.change, "held_out": t.held_out,
        })
    files = []
    for category, rows in sorted(by_category.items()):
        path = folder / f"cap.{category}.{split}.json"
        path.write_text(json.dumps(rows, indent=1))
        files.append(path)
    return files


def write_cirr(triplets, folder, *, split="test1"):
    """Write ``cap.rc2.<split>.json`` in the CIRR layout; return the file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{
        "pairid": i, "reference": t.reference, "target_hard": t.targets[0],
        "target_soft": {sku: 1.0 for sku in t.targets}, "caption": t.text,
        "change": t.change, "held_out": t.held_out,
    } for i, t in enumerate(triplets)]
    path = folder / f"cap.rc2.{split}.json"
    path.write_text(json.dumps(rows, indent=1))
    return path

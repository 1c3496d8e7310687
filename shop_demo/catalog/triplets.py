"""Composed-retrieval triplets over the synthetic catalog, with their ground truth.

A triplet is a reference product, a modification text ("in red", "with polka dots",
"as a sneaker", "with a star print") and every product of the catalog whose attributes
are exactly the reference's with that one change. A triplet is *held out* when its target
combination is held out of all training (``generator.is_held_out``): those measure how
the models compose what they have never seen together.

Written in the official layouts of the two benchmarks the paper reports, so that the
authors' loaders read them (their CIRR loader reads ``captions/`` and ``image_splits/``;
their FashionIQ loader ``json/``, ``image_splits/``, and two captions per triplet):
- CIRR (``write_cirr``): ``captions/cap.rc2.<split>.json``, a list of ``{"pairid",
  "reference", "target_hard", "target_soft", "caption", "img_set"}``, and the gallery
  ``image_splits/split.rc2.<split>.json`` (every product);
- FashionIQ (``write_fashioniq``): ``json/cap.<kind>.<split>.json``, a list of
  ``{"candidate", "target", "captions": [two phrasings of the change]}``, and each kind's
  gallery ``image_splits/split.<kind>.<split>.json`` (the products of that kind). FashionIQ
  never changes the garment type and ranks within the category, so kind changes are left
  out of this layout.
Each triplet also says what its change does to the attribute (``edit``): a *removal* takes it to
the value that means "none" ("without the print", "make it plain"), an *addition* gives a value
to an attribute that had none ("add a star", "with stripes" on a plain one), a *replacement*
swaps one value for another; colours and kinds are always replaced.
Identifiers are product SKUs. Several products may satisfy a triplet; the first is the
``target`` / ``target_hard`` the benchmarks' Recall@K counts, and all of them are listed
(``target_soft`` with score 1.0 in CIRR's own way; ``"targets"`` in the FashionIQ layout,
an extra key). Extra keys ``change`` and ``held_out`` give per-group results.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from shop_demo.catalog import generator

__all__ = ["CHANGES", "EDITS", "Triplet", "make_triplets", "edit_of", "write_fashioniq", "write_cirr"]

SET_SIZE = 6  # CIRR's img_set: the reference, the target and four look-alikes

CHANGES = ("colour", "pattern", "kind", "print")
EDITS = ("replacement", "addition", "removal")
_NONE = {"pattern": "solid", "print": "none"}  # the value of an attribute that has nothing on it

_VALUES = {"colour": tuple(generator.COLOURS), "pattern": generator.PATTERNS, "kind": generator.KINDS,
           "print": generator.PRINTS}


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
    captions: tuple = ()  # FashionIQ's two captions: ``text`` and another phrasing of the change
    img_set: tuple = ()  # CIRR's image set: the reference, targets[0] and up to four wrong look-alikes
    edit: str = "replacement"  # one of EDITS: what the change does to the attribute


def edit_of(change, current, value):
    """'removal' when ``change`` takes the attribute from ``current`` to its value for none,
    'addition' when it gives one to an attribute that had none, else 'replacement'."""
    if change in _NONE and value == _NONE[change]:
        return "removal"
    if change in _NONE and current == _NONE[change]:
        return "addition"
    return "replacement"


def make_triplets(products, *, seed=0, per_product=2):
    """Return triplets for ``products``: up to ``per_product`` changes per reference.

    Only changes that some other product satisfies become triplets. Deterministic in ``seed``;
    the second captions and image sets come from streams of their own, so the references,
    changes, texts and targets are the same as before those existed.
    """
    rng = np.random.default_rng(seed)
    caption_rng, set_rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    by_attributes = defaultdict(list)
    for product in products:
        by_attributes[product.attributes].append(product.sku)
    triplets = []
    for product in products:
        options = []
        for change in CHANGES:
            current = getattr(product.attributes, change)
            for value in _VALUES[change]:
                target = replace(product.attributes, **{change: value})
                if value != current and by_attributes.get(target):
                    options.append((change, value, target))
        for pick in rng.permutation(len(options))[:per_product]:
            change, value, target = options[pick]
            phrases = _phrases(change, value)
            first = int(rng.integers(len(phrases)))
            second = [p for i, p in enumerate(phrases) if i != first][int(caption_rng.integers(len(phrases) - 1))]
            targets = tuple(sorted(by_attributes[target]))
            triplets.append(Triplet(
                reference=product.sku, change=change, text=phrases[first], targets=targets,
                held_out=generator.is_held_out(target), category=product.attributes.kind,
                captions=(phrases[first], second),
                img_set=_image_set(product.sku, targets, target, by_attributes, set_rng),
                edit=edit_of(change, getattr(product.attributes, change), value),
            ))
    return triplets


def _image_set(reference, targets, target, by_attributes, rng):
    """The reference, the first target, and look-alikes one attribute away from the target (never correct).

    CIRR's pairs were drawn within sets of six similar images, and Recall_subset@K ranks that set:
    here the wrong products that differ from the target in one attribute (the reference's own
    combination among them) are the ones that look most like it.
    """
    near = [replace(target, **{change: value}) for change in CHANGES for value in _VALUES[change]
            if value != getattr(target, change)]
    near = [attributes for attributes in near if set(by_attributes.get(attributes, ())) - {reference}]
    members = [reference, targets[0]]
    for i in rng.permutation(len(near))[:SET_SIZE - 2]:
        choices = sorted(set(by_attributes[near[i]]) - {reference})
        members.append(choices[int(rng.integers(len(choices)))])
    return tuple(sorted(members))


def write_fashioniq(triplets, products, folder, *, split="val"):
    """Write ``json/cap.<kind>.<split>.json`` and ``image_splits/split.<kind>.<split>.json`` per kind.

    One caption file per reference kind (the category), without kind changes; each category's
    gallery is every product of that kind. Return the caption files.
    """
    folder = Path(folder)
    (folder / "json").mkdir(parents=True, exist_ok=True)
    (folder / "image_splits").mkdir(parents=True, exist_ok=True)
    by_category = defaultdict(list)
    for t in triplets:
        if t.change == "kind":
            continue
        if len(t.captions) != 2:
            raise ValueError(f"triplet of {t.reference}: FashionIQ needs two captions, got {len(t.captions)}")
        by_category[t.category].append({
            "candidate": t.reference, "target": t.targets[0], "captions": list(t.captions),
            "targets": list(t.targets), "change": t.change, "edit": t.edit, "held_out": t.held_out,
        })
    galleries = defaultdict(list)
    for product in products:
        galleries[product.attributes.kind].append(product.sku)
    files = []
    for category, rows in sorted(by_category.items()):
        path = folder / "json" / f"cap.{category}.{split}.json"
        path.write_text(json.dumps(rows, indent=1))
        (folder / "image_splits" / f"split.{category}.{split}.json").write_text(json.dumps(galleries[category]))
        files.append(path)
    return files


def write_cirr(triplets, products, folder, *, split="val"):
    """Write ``captions/cap.rc2.<split>.json`` and the gallery ``image_splits/split.rc2.<split>.json``.

    The gallery is every product, mapped to its image's path as CIRR's split files do
    (``./dev/<sku>.png``). Return the caption file.
    """
    folder = Path(folder)
    (folder / "captions").mkdir(parents=True, exist_ok=True)
    (folder / "image_splits").mkdir(parents=True, exist_ok=True)
    rows = [{
        "pairid": i, "reference": t.reference, "target_hard": t.targets[0],
        "target_soft": {sku: 1.0 for sku in t.targets}, "caption": t.text,
        **({"img_set": {"id": i, "members": list(t.img_set)}} if t.img_set else {}),
        "change": t.change, "edit": t.edit, "held_out": t.held_out,
    } for i, t in enumerate(triplets)]
    path = folder / "captions" / f"cap.rc2.{split}.json"
    path.write_text(json.dumps(rows, indent=1))
    (folder / "image_splits" / f"split.rc2.{split}.json").write_text(
        json.dumps({p.sku: f"./dev/{p.sku}.png" for p in products}))
    return path

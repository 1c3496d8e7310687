"""Deterministic synthetic product catalogue for the demo shop.

The demo shop needs a catalogue whose ground truth is known, so that composed
image search (Pic2Word: "this product, but in red with stripes") can be
evaluated.  Every product is a combination of four attributes::

    kind     t-shirt, dress, trousers, sneaker, boot, handbag, cap, mug
    colour   11 well separated colours (``COLOURS``)
    pattern  solid, stripes, dots, checks (drawn inside the silhouette)
    print    none, star, heart, circle (a small motif on the product body)

``generate_products`` draws the attributes and shop metadata (title,
description, price, stock flag, captions); ``render`` draws a small photo-like
RGB image of a product.  Nuisance variation (background colour and texture,
scale, position, rotation, lighting, noise) is drawn from a numpy Generator
seeded with ``(seed, product.index, variant)``, so a given product/variant is
pixel-identical across runs and ``variant`` gives "another photo" of the same
product.  Nuisance draws never depend on the attributes, so two products with
the same index but different attributes are rendered under the same nuisance
(useful for controlled comparisons; see ``silhouette_mask``).

Pure Python + numpy + Pillow; no Django imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "KINDS",
    "COLOURS",
    "PATTERNS",
    "PRINTS",
    "ATTRIBUTE_WORDS",
    "Attributes",
    "SyntheticProduct",
    "generate_products",
    "make_product",
    "render",
    "silhouette_mask",
    "captions_for",
    "title_for",
    "HELD_OUT",
    "is_held_out",
]

# --------------------------------------------------------------------------
# Attribute vocabularies
# --------------------------------------------------------------------------

KINDS: tuple[str, ...] = (
    "t-shirt",
    "dress",
    "trousers",
    "sneaker",
    "boot",
    "handbag",
    "cap",
    "mug",
)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 30, 38),
    "orange": (245, 128, 18),
    "yellow": (247, 215, 35),
    "green": (36, 150, 62),
    "blue": (32, 82, 205),
    "purple": (122, 48, 165),
    "pink": (246, 128, 182),
    "brown": (118, 70, 34),
    "black": (28, 28, 30),
    "white": (246, 246, 244),
    "grey": (128, 128, 128),
}

PATTERNS: tuple[str, ...] = ("solid", "stripes", "dots", "checks")
PRINTS: tuple[str, ...] = ("none", "star", "heart", "circle")

# Attribute combinations held out of all training (the CLIP's image-caption pairs and
# the Pic2Word mapping's images), so the evaluation can measure composition on
# combinations no model has seen, as the paper measures zero-shot transfer. One
# colour and one pattern per kind, spread so that every colour except one and every
# non-solid pattern is held out somewhere. Fixed before any comparison; do not tune.
HELD_OUT: frozenset[tuple[str, str]] = frozenset({
    ("t-shirt", "green"), ("dress", "blue"), ("trousers", "red"), ("sneaker", "yellow"),
    ("boot", "pink"), ("handbag", "orange"), ("cap", "purple"), ("mug", "grey"),
    ("t-shirt", "checks"), ("dress", "dots"), ("sneaker", "stripes"), ("mug", "dots"),
})


def is_held_out(attributes: "Attributes") -> bool:
    """True when the product's (kind, colour) or (kind, pattern) is held out of training."""
    return (attributes.kind, attributes.colour) in HELD_OUT or (attributes.kind, attributes.pattern) in HELD_OUT


# Sampling weights (same order as PATTERNS / PRINTS).
_PATTERN_P = (0.4, 0.2, 0.2, 0.2)
_PRINT_P = (0.4, 0.2, 0.2, 0.2)

# Word stems that a caption uses for each attribute value; a caption
# "mentions" a value when one of these occurs at the start of a word
# (regex ``\\b<stem>``).  Print "none" is never mentioned.
ATTRIBUTE_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "kind": {
        "t-shirt": ("t-shirt", "tee"),
        "dress": ("dress",),
        "trousers": ("trousers", "pants", "slacks"),
        "sneaker": ("sneaker", "trainer", "running shoe"),
        "boot": ("boot",),
        "handbag": ("handbag", "bag", "purse"),
        "cap": ("cap", "baseball cap"),
        "mug": ("mug", "coffee mug", "cup"),
    },
    "colour": {c: ((c, "gray") if c == "grey" else (c,)) for c in COLOURS},
    "pattern": {
        "solid": ("plain", "solid"),
        "stripes": ("strip",),
        "dots": ("dot", "polka", "spot"),
        "checks": ("check", "plaid"),
    },
    "print": {"star": ("star",), "heart": ("heart",), "circle": ("circle",)},
}


@dataclass(frozen=True)
class Attributes:
    kind: str
    colour: str
    pattern: str
    print: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {self.pattern!r}")
        if self.print not in PRINTS:
            raise ValueError(f"unknown print {self.print!r}")


@dataclass(frozen=True)
class SyntheticProduct:
    index: int
    sku: str
    attributes: Attributes
    title: str
    description: str
    category: str
    price: Decimal
    in_stock: bool
    captions: tuple[str, ...]


# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------

_KIND_NOUNS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "tee", "t-shirt"),
    "dress": ("dress", "summer dress"),
    "trousers": ("trousers", "pants", "slacks"),
    "sneaker": ("sneaker", "trainer", "running shoe"),
    "boot": ("boot", "tall boot"),
    "handbag": ("handbag", "bag", "purse"),
    "cap": ("cap", "baseball cap"),
    "mug": ("mug", "coffee mug", "cup"),
}
_PLURAL_NOUNS = {"trousers", "pants", "slacks"}

_COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    c: ((c, c, "gray") if c == "grey" else (c,)) for c in COLOURS
}

_PATTERN_ADJ: dict[str, tuple[str, ...]] = {
    "solid": ("plain", "solid", "solid-colour"),
    "stripes": ("striped", "stripy", "striped"),
    "dots": ("polka-dot", "dotted", "spotted"),
    "checks": ("checked", "plaid", "checkered"),
}
# "... with <noun>"
_PATTERN_WITH: dict[str, tuple[str, ...]] = {
    "solid": ("a plain finish", "a solid colour", "a plain design"),
    "stripes": ("stripes", "horizontal stripes", "a striped pattern"),
    "dots": ("polka dots", "dots", "spots"),
    "checks": ("checks", "a plaid pattern", "a check pattern"),
}
_PRINT_WITH: dict[str, tuple[str, ...]] = {
    "star": ("a star print", "a star motif", "a little star on it"),
    "heart": ("a heart print", "a heart motif", "a little heart on it"),
    "circle": ("a circle print", "a circle motif", "a round circle on it"),
}
_TITLE_PATTERN = {"solid": "", "stripes": "striped ", "dots": "polka-dot ", "checks": "checked "}

_KIND_BLURB: dict[str, tuple[str, ...]] = {
    "t-shirt": ("cut from soft cotton jersey", "with a relaxed everyday fit"),
    "dress": ("with a flared A-line skirt", "made from light breathable fabric"),
    "trousers": ("with a straight leg and a comfortable waist", "tailored from durable twill"),
    "sneaker": ("with a cushioned rubber sole", "built for all-day comfort"),
    "boot": ("with a sturdy sole and a tall shaft", "made from hard-wearing leather"),
    "handbag": ("with a top handle and roomy interior", "sized for everyday essentials"),
    "cap": ("with a curved brim and adjustable strap", "made from washed cotton twill"),
    "mug": ("in glazed ceramic that is dishwasher safe", "holding a generous 350 ml"),
}

# Price range (whole currency units) per kind.
_PRICE_RANGE: dict[str, tuple[int, int]] = {
    "t-shirt": (12, 35),
    "dress": (35, 110),
    "trousers": (30, 90),
    "sneaker": (45, 140),
    "boot": (70, 220),
    "handbag": (40, 260),
    "cap": (10, 30),
    "mug": (6, 19),
}
_CENTS = ("99", "95", "49", "00")


def _pick(rng: Any, options: Sequence[Any]) -> Any:
    """Choose one element with a numpy Generator or a ``random.Random``."""
    if hasattr(rng, "integers"):
        return options[int(rng.integers(len(options)))]
    return options[rng.randrange(len(options))]


def _an(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _noun_phrase(words: list[str], noun: str, rng: Any, *, article: bool = True) -> str:
    """'a red striped tee' / 'a pair of red striped trousers'."""
    body = " ".join([w for w in words if w] + [noun])
    if not article:
        return body
    if noun in _PLURAL_NOUNS:
        return _pick(rng, ("a pair of ", "")) + body
    return f"{_an(body)} {body}"


def captions_for(attributes: Attributes, rng: Any = None, *, k: int = 5) -> tuple[str, ...]:
    """Several natural-language captions describing ``attributes``.

    Every caption mentions the kind, the colour and the pattern (solid is
    "plain"/"solid"), plus the print unless it is "none"; synonyms vary
    (tee/t-shirt, trainer/sneaker, plaid/checked, polka dots/dots, ...).
    ``rng`` is a numpy Generator (or ``random.Random`` or an int seed);
    the result is deterministic for a given rng state.
    """
    if rng is None or isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(rng)
    a = attributes
    has_print = a.print != "none"

    def w(table: dict[str, tuple[str, ...]], key: str) -> str:
        return _pick(rng, table[key])

    def print_tail(joiner: str = " with ") -> str:
        return f"{joiner}{w(_PRINT_WITH, a.print)}" if has_print else ""

    def t_adjs() -> str:  # a red striped t-shirt with a star print
        np_ = _noun_phrase([w(_COLOUR_WORDS, a.colour), w(_PATTERN_ADJ, a.pattern)],
                           w(_KIND_NOUNS, a.kind), rng)
        return np_ + print_tail()

    def t_in_colour() -> str:  # striped t-shirt in red with a star print
        return (f"{w(_PATTERN_ADJ, a.pattern)} {w(_KIND_NOUNS, a.kind)} "
                f"in {w(_COLOUR_WORDS, a.colour)}" + print_tail())

    def t_photo() -> str:  # photo of a red tee with stripes and a star print
        np_ = _noun_phrase([w(_COLOUR_WORDS, a.colour)], w(_KIND_NOUNS, a.kind), rng)
        return (f"{_pick(rng, ('photo', 'a photo', 'picture', 'product photo'))} of {np_} "
                f"with {w(_PATTERN_WITH, a.pattern)}" + print_tail(" and "))

    def t_listing() -> str:  # red tee, striped, star print
        parts = [f"{w(_COLOUR_WORDS, a.colour)} {w(_KIND_NOUNS, a.kind)}",
                 w(_PATTERN_ADJ, a.pattern)]
        if has_print:
            parts.append(f"{a.print} print")
        return ", ".join(parts)

    def t_kind_first() -> str:  # a tee in red with polka dots and a heart motif
        np_ = _noun_phrase([], w(_KIND_NOUNS, a.kind), rng)
        return (f"{np_} in {w(_COLOUR_WORDS, a.colour)} with {w(_PATTERN_WITH, a.pattern)}"
                + print_tail(" and "))

    def t_looking() -> str:  # looking for a plaid trainer in blue, heart print
        np_ = _noun_phrase([w(_PATTERN_ADJ, a.pattern)], w(_KIND_NOUNS, a.kind), rng)
        head = _pick(rng, ("looking for", "shop this:", "wanted:"))
        tail = f", {a.print} print" if has_print else ""
        return f"{head} {np_} in {w(_COLOUR_WORDS, a.colour)}{tail}"

    templates = [t_adjs, t_in_colour, t_photo, t_listing, t_kind_first, t_looking]
    order = rng.permutation(len(templates)) if hasattr(rng, "permutation") else \
        rng.sample(range(len(templates)), len(templates))
    out: list[str] = []
    for i in order:
        cap = templates[int(i)]()
        if cap not in out:
            out.append(cap)
        if len(out) >= k:
            break
    return tuple(out)


def title_for(attributes: Attributes) -> str:
    """Shop title, e.g. "Red striped t-shirt with star print"."""
    a = attributes
    t = f"{a.colour} {_TITLE_PATTERN[a.pattern]}{a.kind}"
    if a.print != "none":
        t += f" with {a.print} print"
    return t[0].upper() + t[1:]


def _description(a: Attributes, rng: np.random.Generator) -> str:
    pattern = {
        "solid": "",
        "stripes": " with contrasting stripes",
        "dots": " covered in polka dots",
        "checks": " in a checked pattern",
    }[a.pattern]
    if a.print != "none":
        pattern += (" and" if a.pattern in ("stripes", "dots") else " with") + f" a small {a.print} print"
    noun = a.kind if a.kind != "trousers" else "pair of trousers"
    opener = _pick(rng, ("", "classic ", "simple ", "everyday "))
    head = f"{opener}{a.colour} {noun}"
    return f"{_an(head).capitalize()} {head}{pattern}, {_pick(rng, _KIND_BLURB[a.kind])}."


def _price(kind: str, rng: np.random.Generator) -> Decimal:
    lo, hi = _PRICE_RANGE[kind]
    whole = int(rng.integers(lo, hi + 1))
    return Decimal(f"{whole}.{_pick(rng, _CENTS)}")


def _seed_seq(*parts: int) -> list[int]:
    return [int(p) % (1 << 63) for p in parts]


def make_product(index: int, attributes: Attributes, *, seed: int = 0) -> SyntheticProduct:
    """Build the metadata for a product with given attributes (deterministic)."""
    rng = np.random.default_rng(_seed_seq(seed, index, 0x7E47))
    return SyntheticProduct(
        index=index,
        sku=f"DEMO-{index + 1:05d}",
        attributes=attributes,
        title=title_for(attributes),
        description=_description(attributes, rng),
        category=attributes.kind,
        price=_price(attributes.kind, rng),
        in_stock=bool(rng.random() < 0.85),
        captions=captions_for(attributes, rng),
    )


def generate_products(n: int, *, seed: int = 0) -> list[SyntheticProduct]:
    """``n`` products with attributes drawn from ``seed``.

    Product ``i`` (0-based ``index``, sku ``DEMO-{i+1:05d}``) depends only on
    ``(seed, i)``, so ``generate_products(10)`` is a prefix of
    ``generate_products(100)``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    products = []
    for i in range(n):
        rng = np.random.default_rng(_seed_seq(seed, i, 0xA77))
        attrs = Attributes(
            kind=KINDS[int(rng.integers(len(KINDS)))],
            colour=list(COLOURS)[int(rng.integers(len(COLOURS)))],
            pattern=PATTERNS[int(rng.choice(len(PATTERNS), p=_PATTERN_P))],
            print=PRINTS[int(rng.choice(len(PRINTS), p=_PRINT_P))],
        )
        products.append(make_product(i, attrs, seed=seed))
    return products


# --------------------------------------------------------------------------
# Geometry: silhouettes in a unit object frame ([-0.5, 0.5]^2, y down)
# --------------------------------------------------------------------------

Pts = list[tuple[float, float]]


def _ellipse(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0,
             a1: float = 2 * math.pi, n: int = 28) -> Pts:
    closed = abs((a1 - a0) - 2 * math.pi) < 1e-9
    ts = np.linspace(a0, a1, n, endpoint=not closed)
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in ts]


def _rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 5) -> Pts:
    pts: Pts = []
    for cx, cy, a in ((x1 - r, y0 + r, -math.pi / 2), (x1 - r, y1 - r, 0.0),
                      (x0 + r, y1 - r, math.pi / 2), (x0 + r, y0 + r, math.pi)):
        pts += _ellipse(cx, cy, r, r, a, a + math.pi / 2, n)
    return pts


@dataclass(frozen=True)
class _Shape:
    # (polygon, fill) drawn in order onto the mask: 255 adds, 0 cuts a hole.
    parts: tuple[tuple[tuple[tuple[float, float], ...], int], ...]
    # (polygon, tone) regions re-coloured after the pattern (soles, brims...).
    # tone: "sole_light", "sole_dark", "shade", "inside".
    trims: tuple[tuple[tuple[tuple[float, float], ...], str], ...]
    print_at: tuple[float, float, float]  # cx, cy, radius of the print motif
    stripes_vertical: bool = False


def _shape(parts: list[tuple[Pts, int]], trims: list[tuple[Pts, str]],
           print_at: tuple[float, float, float], **kw: Any) -> _Shape:
    return _Shape(tuple((tuple(p), f) for p, f in parts),
                  tuple((tuple(p), t) for p, t in trims), print_at, **kw)


def _build_shapes() -> dict[str, _Shape]:
    s: dict[str, _Shape] = {}
    tee = [(-0.11, -0.41), (-0.25, -0.37), (-0.47, -0.19), (-0.37, -0.02), (-0.25, -0.10),
           (-0.25, 0.43), (0.25, 0.43), (0.25, -0.10), (0.37, -0.02), (0.47, -0.19),
           (0.25, -0.37), (0.11, -0.41)]
    tee += _ellipse(0.0, -0.41, 0.11, 0.08, 0.0, math.pi, 9)[1:-1]  # neckline scoop
    s["t-shirt"] = _shape([(tee, 255)], [], (0.0, 0.04, 0.13))

    dress = [(-0.14, -0.47), (-0.09, -0.47), (-0.06, -0.34), (0.06, -0.34), (0.09, -0.47),
             (0.14, -0.47), (0.16, -0.26), (0.11, -0.08), (0.25, 0.20), (0.37, 0.45),
             (0.12, 0.47), (0.0, 0.46), (-0.12, 0.47), (-0.37, 0.45), (-0.25, 0.20),
             (-0.11, -0.08), (-0.16, -0.26)]
    s["dress"] = _shape([(dress, 255)], [], (0.0, 0.20, 0.12))

    trousers = [(-0.22, -0.46), (0.22, -0.46), (0.24, -0.20), (0.27, 0.46), (0.05, 0.46),
                (0.0, -0.10), (-0.05, 0.46), (-0.27, 0.46), (-0.24, -0.20)]
    waist = [(-0.22, -0.46), (0.22, -0.46), (0.222, -0.40), (-0.222, -0.40)]
    s["trousers"] = _shape([(trousers, 255)], [(waist, "shade")], (-0.12, -0.24, 0.075),
                           stripes_vertical=True)

    # Side view, toe pointing left (so it does not line up with the cap's brim).
    sneaker = [(-0.46, 0.18), (-0.48, 0.08), (-0.44, 0.00), (-0.30, -0.06), (-0.12, -0.12),
               (-0.02, -0.22), (0.08, -0.30), (0.16, -0.26), (0.26, -0.20), (0.34, -0.27),
               (0.43, -0.24), (0.47, -0.10), (0.48, 0.18)]
    sole = [(-0.50, 0.11), (0.50, 0.11), (0.50, 0.20), (-0.50, 0.20)]
    s["sneaker"] = _shape([(sneaker, 255)], [(sole, "sole_light")], (0.24, -0.04, 0.09))

    boot = [(-0.33, -0.46), (0.0, -0.46), (0.02, 0.00), (0.10, 0.08), (0.32, 0.15),
            (0.40, 0.22), (0.41, 0.37), (-0.06, 0.37), (-0.10, 0.43), (-0.30, 0.43),
            (-0.32, 0.30)]
    boot = [(x - 0.04, y) for x, y in boot]
    boot_sole = [(-0.60, 0.31), (0.60, 0.31), (0.60, 0.50), (-0.60, 0.50)]
    s["boot"] = _shape([(boot, 255)], [(boot_sole, "sole_dark")], (-0.20, -0.18, 0.10))

    bag_body = [(-0.36, -0.06), (0.36, -0.06), (0.44, 0.40), (-0.44, 0.40)]
    handle_out = _ellipse(0.0, -0.06, 0.25, 0.33, n=32)
    handle_in = _ellipse(0.0, -0.06, 0.185, 0.265, n=32)
    flap = [(-0.36, -0.06), (0.36, -0.06), (0.38, 0.06), (-0.38, 0.06)]
    s["handbag"] = _shape([(handle_out, 255), (handle_in, 0), (bag_body, 255)],
                          [(flap, "shade")], (0.0, 0.22, 0.12))

    dome = _ellipse(-0.12, 0.16, 0.34, 0.48, math.pi, 2 * math.pi, 22)
    cap = dome + [(0.22, 0.16), (0.22, 0.21), (-0.46, 0.21)]
    brim = [(0.12, 0.08), (0.32, 0.10), (0.50, 0.17), (0.49, 0.23), (0.12, 0.21)]
    button = _ellipse(-0.12, -0.32, 0.05, 0.04, n=12)
    s["cap"] = _shape([(cap, 255), (brim, 255), (button, 255)],
                      [(brim, "shade"), (_ellipse(-0.12, 0.20, 0.35, 0.03, n=16), "shade")],
                      (-0.13, -0.03, 0.13))

    mug_body = _rounded_rect(-0.33, -0.36, 0.19, 0.40, 0.06)
    mug_out = _ellipse(0.20, 0.02, 0.22, 0.23, n=32)
    mug_in = _ellipse(0.20, 0.02, 0.135, 0.15, n=32)
    rim = _ellipse(-0.07, -0.355, 0.24, 0.035, n=20)
    s["mug"] = _shape([(mug_out, 255), (mug_in, 0), (mug_body, 255)], [(rim, "inside")],
                      (-0.07, 0.03, 0.14))
    return s


_SHAPES = _build_shapes()


def _motif(name: str) -> Pts:
    """Motif polygon in a unit-radius frame (y down)."""
    if name == "star":
        pts = []
        for i in range(10):
            r = 1.0 if i % 2 == 0 else 0.42
            t = -math.pi / 2 + i * math.pi / 5
            pts.append((r * math.cos(t), r * math.sin(t) + 0.08))
        return pts
    if name == "heart":
        ts = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        x = 16 * np.sin(ts) ** 3
        y = 13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts)
        return [(float(a) / 16.5, -float(b) / 16.5 - 0.1) for a, b in zip(x, y)]
    if name == "circle":
        return _ellipse(0.0, 0.0, 0.85, 0.85, n=24)
    raise ValueError(name)


_MOTIFS = {p: _motif(p) for p in PRINTS if p != "none"}


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    S: int  # supersampled canvas size
    ss: int  # supersampling factor
    A: np.ndarray  # 2x2 object->canvas linear map
    t: np.ndarray  # canvas position of the object origin

    def apply(self, pts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        p = np.asarray(pts, dtype=np.float64) @ self.A.T + self.t
        return [(float(x), float(y)) for x, y in p]


def _supersample(size: int) -> int:
    return 2 if size <= 256 else 1


def _nuisance_rng(seed: int, index: int, variant: int) -> np.random.Generator:
    return np.random.default_rng(_seed_seq(seed, index, variant, 0x5EED))


def _geometry(kind: str, rng: np.random.Generator, size: int) -> _Geometry:
    """Scale / rotation / offset (3+2 draws, independent of the attributes)."""
    ss = _supersample(size)
    S = size * ss
    scale = rng.uniform(0.74, 0.92) * S
    angle = math.radians(rng.uniform(-11.0, 11.0))
    off = rng.uniform(-0.07, 0.07, size=2) * S
    c, s_ = math.cos(angle), math.sin(angle)
    A = scale * np.array([[c, -s_], [s_, c]])
    # Clamp the offset so the whole silhouette stays inside the frame.
    pts = np.array([p for poly, fill in _SHAPES[kind].parts if fill for p in poly]) @ A.T
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    margin = 1.0 * ss
    t = np.empty(2)
    for ax in range(2):
        want = S / 2 + off[ax]
        lo_ok, hi_ok = margin - lo[ax], S - margin - hi[ax]
        t[ax] = (lo_ok + hi_ok) / 2 if lo_ok > hi_ok else min(max(want, lo_ok), hi_ok)
    return _Geometry(S=S, ss=ss, A=A, t=t)


def _draw_mask(geo: _Geometry, kind: str) -> Image.Image:
    mask = Image.new("L", (geo.S, geo.S), 0)
    d = ImageDraw.Draw(mask)
    for poly, fill in _SHAPES[kind].parts:
        d.polygon(geo.apply(poly), fill=fill)
    return mask


def silhouette_mask(product: SyntheticProduct | Attributes, seed: int = 0, size: int = 64,
                    variant: int = 0) -> np.ndarray:
    """Boolean ``(size, size)`` mask of the product silhouette in ``render``'s image.

    ``product`` may also be an ``Attributes`` (index 0 is assumed).
    """
    kind, index = _kind_index(product)
    geo = _geometry(kind, _nuisance_rng(seed, index, variant), size)
    m = _draw_mask(geo, kind)
    if geo.ss != 1:
        m = m.resize((size, size), Image.BOX)
    return np.asarray(m) >= 128


def _kind_index(product: SyntheticProduct | Attributes) -> tuple[str, int]:
    if isinstance(product, Attributes):
        return product.kind, 0
    return product.attributes.kind, product.index


# Pattern geometry (object-frame units; the object spans ~0.8 of the image) and
# the contrast of the secondary tone.  Tuned so that the named colour stays the
# dominant colour of a patterned product while the pattern is clearly visible.
_STRIPE_PERIOD, _STRIPE_DUTY = 0.15, 0.28
_DOT_PERIOD, _DOT_RADIUS = 0.16, 0.25  # radius in periods
_CHECK_PERIOD, _CHECK_BAND, _CHECK_HALF = 0.18, 0.25, 0.35
_TINT, _DARKEN = 0.7, 0.55


def _luma(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _secondary(base: np.ndarray) -> np.ndarray:
    """Contrasting tone for patterns: light tint on dark colours, dark on light."""
    if _luma(base) < 150:
        return base + (np.array([250.0, 250.0, 248.0]) - base) * _TINT
    return base * _DARKEN


def _ink(base: np.ndarray) -> np.ndarray:
    return np.array([252.0, 252.0, 250.0]) if _luma(base) < 150 else np.array([30.0, 30.0, 34.0])


def _background(rng: np.random.Generator, S: int, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Light, varied studio background with a subtle texture."""
    Y, X = grid
    base = rng.uniform(196.0, 228.0)
    tint = rng.uniform(-9.0, 9.0, size=3)
    bg = np.empty((S, S, 3), dtype=np.float32)
    bg[:] = base + tint
    # Low-frequency blotches.
    small = rng.uniform(-1.0, 1.0, size=(4, 4)).astype(np.float32)
    blot = np.asarray(Image.fromarray(small).resize((S, S), Image.BICUBIC))
    bg += (rng.uniform(3.0, 9.0) * blot)[..., None]
    # Texture type: 0 plain, 1 linen lines, 2 paper grain, 3 soft floor gradient.
    tex = int(rng.integers(4))
    if tex == 1:
        ang = rng.uniform(0, math.pi)
        period = rng.uniform(3.0, 7.0) * S / 64
        ph = (X * math.cos(ang) + Y * math.sin(ang)) / period
        bg += (rng.uniform(2.0, 5.0) * np.sin(2 * math.pi * ph))[..., None]
    elif tex == 2:
        grain = rng.normal(0.0, 1.0, size=(S // 2, S // 2)).astype(np.float32)
        grain = np.repeat(np.repeat(grain, 2, axis=0), 2, axis=1)
        bg += (rng.uniform(2.0, 5.0) * grain)[..., None]
    elif tex == 3:
        bg -= (rng.uniform(8.0, 22.0) * np.clip((Y / S - 0.55) / 0.45, 0, 1))[..., None]
    return bg


def render(product: SyntheticProduct, *, seed: int = 0, size: int = 64,
           variant: int = 0) -> Image.Image:
    """Render a deterministic RGB ``size`` x ``size`` photo of ``product``.

    ``variant`` selects another photo of the same product (different
    background, pose, lighting and noise).  Nuisance depends only on
    ``(seed, product.index, variant, size)``; the attributes decide the
    product's appearance.
    """
    if size < 8:
        raise ValueError("size must be >= 8")
    a = product.attributes
    shape = _SHAPES[a.kind]
    rng = _nuisance_rng(seed, product.index, variant)
    geo = _geometry(a.kind, rng, size)
    S = geo.S
    Y, X = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5

    # ---- nuisance draws (fixed order, attribute independent) ----
    bg = _background(rng, S, (Y, X))
    pat_phase = rng.uniform(0.0, 1.0, size=2)
    shade_dir = rng.uniform(-1.0, 1.0, size=2)
    shadow_off = rng.uniform(0.5, 2.5, size=2) * geo.ss
    gain = rng.uniform(0.92, 1.08)
    contrast = rng.uniform(0.9, 1.1)
    grad_ang = rng.uniform(0.0, 2 * math.pi)
    grad_amt = rng.uniform(0.0, 0.12)
    noise_sigma = rng.uniform(1.5, 5.0)

    # ---- silhouette ----
    mask_img = _draw_mask(geo, a.kind)
    alpha = np.asarray(mask_img, dtype=np.float32) / 255.0

    # Object-frame coordinates of every canvas pixel (for patterns/shading).
    Ainv = np.linalg.inv(geo.A).astype(np.float32)
    dx, dy = X - geo.t[0], Y - geo.t[1]
    U = Ainv[0, 0] * dx + Ainv[0, 1] * dy
    V = Ainv[1, 0] * dx + Ainv[1, 1] * dy

    base = np.array(COLOURS[a.colour], dtype=np.float32)
    sec = _secondary(base).astype(np.float32)
    if a.pattern == "solid":
        p = None
    elif a.pattern == "stripes":
        coord = U if shape.stripes_vertical else V
        p = (((coord / _STRIPE_PERIOD) + pat_phase[0]) % 1.0 < _STRIPE_DUTY).astype(np.float32)
    elif a.pattern == "dots":
        period = _DOT_PERIOD
        gu = U / period + pat_phase[0]
        row = np.floor(V / period + pat_phase[1])
        gu = gu + 0.5 * (row % 2)  # staggered rows
        fu = gu % 1.0 - 0.5
        fv = (V / period + pat_phase[1]) % 1.0 - 0.5
        p = ((fu * fu + fv * fv) < _DOT_RADIUS ** 2).astype(np.float32)
    else:  # checks: gingham-like bands, crossings full tone
        period = _CHECK_PERIOD
        bu = (((U / period) + pat_phase[0]) % 1.0 < _CHECK_BAND).astype(np.float32)
        bv = (((V / period) + pat_phase[1]) % 1.0 < _CHECK_BAND).astype(np.float32)
        p = np.where((bu + bv) > 1.5, 1.0, _CHECK_HALF * (bu + bv))
    if p is None:
        prod = np.broadcast_to(base, (S, S, 3)).copy()
    else:
        prod = base + p[..., None] * (sec - base)

    # Trims (soles, brims, rims) and the print motif, via small masks.
    if shape.trims or a.print != "none":
        layer = Image.new("L", (S, S), 0)
        d = ImageDraw.Draw(layer)
        tones = {
            "sole_light": np.array([236.0, 234.0, 226.0] if _luma(base) < 220
                                   else [150.0, 148.0, 144.0]),
            "sole_dark": np.array([44.0, 38.0, 34.0] if _luma(base) > 60
                                  else [120.0, 108.0, 96.0]),
            "shade": base * 0.8,
            "inside": base * 0.45,
        }
        codes: dict[int, np.ndarray] = {}
        for i, (poly, tone) in enumerate(shape.trims, start=1):
            d.polygon(geo.apply(poly), fill=i)
            codes[i] = tones[tone]
        if a.print != "none":
            cx, cy, r = shape.print_at
            # A base-colour patch (clears the pattern) then the motif in ink.
            d.polygon(geo.apply([(cx + 1.35 * r * x, cy + 1.35 * r * y) for x, y in _MOTIFS[a.print]]),
                      fill=200)
            d.polygon(geo.apply([(cx + r * x, cy + r * y) for x, y in _MOTIFS[a.print]]), fill=201)
            codes[200] = base
            codes[201] = _ink(base)
        lab = np.asarray(layer)
        for code, tone in codes.items():
            prod[lab == code] = tone

    # Soft directional shading across the product + dark outline.
    shade = 1.0 + 0.10 * (shade_dir[0] * U + shade_dir[1] * V)
    prod *= shade[..., None]
    eroded = np.asarray(mask_img.filter(ImageFilter.MinFilter(3 if geo.ss == 1 else 5)),
                        dtype=np.float32) / 255.0
    edge = np.clip(alpha - eroded, 0.0, 1.0)[..., None]
    prod = prod * (1.0 - 0.45 * edge)

    # Drop shadow on the background.
    sh = mask_img.filter(ImageFilter.GaussianBlur(2.0 * geo.ss))
    sh = np.asarray(sh, dtype=np.float32) / 255.0
    sh = np.roll(sh, (int(round(shadow_off[1])), int(round(shadow_off[0]))), axis=(0, 1))
    bg *= (1.0 - 0.22 * sh)[..., None]

    img = bg + alpha[..., None] * (prod - bg)
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if geo.ss != 1:
        small = small.resize((size, size), Image.BOX)
    out = np.asarray(small, dtype=np.float32)

    # Lighting: global gain, contrast and a linear brightness gradient; noise.
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size - 0.5
    grad = 1.0 + grad_amt * 2.0 * (math.cos(grad_ang) * xx + math.sin(grad_ang) * yy)
    out = out * (gain * grad)[..., None]
    out = (out - 128.0) * contrast + 128.0
    out += rng.normal(0.0, noise_sigma, size=out.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))

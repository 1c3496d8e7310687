"""Why a composed query misses: the attributes of its best answer, against what was asked.

Recall says how often the right product comes first; on the synthetic catalog we can also
say *how* the first answer is wrong. For each triplet (a reference, one change) the top-1
product either carries the requested value of the changed attribute ("applied") or not,
and keeps or loses each of the reference's other attributes ("kept <attribute>"). A method
that applies the change but drops the product kind has a different problem from one that
returns the reference's look-alike unchanged.
"""

from collections import defaultdict

from shop_demo.catalog.triplets import CHANGES

__all__ = ["ATTRIBUTES", "diagnose", "markdown", "groups"]

ATTRIBUTES = ("kind", "colour", "pattern", "print")


def diagnose(triplets, top1, attributes):
    """Return {change: {"applied": share, "kept <attribute>": share, ..., "n": count}}.

    ``top1`` gives the first product (sku) of each triplet's ranking, in the same order;
    ``attributes`` maps a sku to its generator Attributes. ``change="all"`` covers every triplet.
    """
    counts = defaultdict(lambda: defaultdict(int))
    for triplet, answer in zip(triplets, top1, strict=True):
        reference, target, got = (attributes[triplet.reference], attributes[triplet.targets[0]],
                                  attributes[answer])
        for group in (triplet.change, "all"):
            row = counts[group]
            row["n"] += 1
            row["applied"] += getattr(got, triplet.change) == getattr(target, triplet.change)
            for name in ATTRIBUTES:
                if name != triplet.change:
                    row[f"kept {name}"] += getattr(got, name) == getattr(reference, name)
                    row[f"kept of {name}"] += 1  # denominator: "all" mixes changes
    return {
        group: {"n": row["n"], "applied": row["applied"] / row["n"],
                **{f"kept {name}": row[f"kept {name}"] / row[f"kept of {name}"]
                   for name in ATTRIBUTES if row[f"kept of {name}"]}}
        for group, row in counts.items()
    }


def markdown(by_method, *, group):
    """One row per method for one group: the shares of top-1 answers that applied / kept each attribute."""
    columns = ["applied"] + [f"kept {name}" for name in ATTRIBUTES if name != group]
    lines = ["| method | " + " | ".join(columns) + " | queries |", "| --- |" + " ---: |" * (len(columns) + 1)]
    for method, groups in by_method.items():
        row = groups.get(group)
        if row:
            lines.append(f"| {method} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + f" | {row['n']} |")
    return "\n".join(lines)


def groups():
    """The groups ``diagnose`` reports, in display order."""
    return ("all", *CHANGES)

"""Two changes in a row ("in red", then "with stripes"): triplets with known answers, and the ways to chain them.

A shopper who refines a "like this, but ..." result asks a second change after the first.
How the second composes with the first is a choice; this module measures it on the
synthetic catalog, where the right answers are known:

- ``on_first_result``: the second change composes on the first search's best product (what
  a shopper gets by opening the first result and asking again);
- ``one_sentence``: the reference with both changes in one sentence ("in red and with stripes");
- ``one_sentence_comma``: the same, joined as the prompt joins the reference and the change
  ("in red , with stripes"): the app's own rule (``journey.chained_change``), which the
  storefront and the host shops' pages ship;
- ``sum_of_queries``: the normalised sum of the two one-change queries of the reference;
- ``second_only``: the reference with the second change alone (forgets the first: a floor).

A chained triplet is a reference product, two changes of two different attributes (in the
order asked) and every product whose attributes are exactly the reference's with both
changes. They are drawn like ``triplets.make_triplets`` draws one change (the same attributes,
values and phrasings; only combinations some product has), from a seeded stream of their own,
so they are reproducible and independent of the one-change benchmark's draws. The caller
passes the embedder and the gallery (``manage.py evaluate_chained`` does).
"""

from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from p2w_search import evaluation, ranking_metrics
from p2w_search.composition import composed_queries, normalise
from p2w_search.shopper.journey import chained_change
from shop_demo.catalog import generator
from shop_demo.catalog.triplets import _VALUES, CHANGES, _phrases

__all__ = ["ChainedTriplet", "CHAINS", "KS", "make_chained_triplets", "one_sentence", "chained_rankings",
           "measure", "markdown"]

KS = (1, 10, 50)
CHAINS = ("on_first_result", "one_sentence", "one_sentence_comma", "sum_of_queries", "second_only")


@dataclass(frozen=True)
class ChainedTriplet:
    reference: str  # sku
    changes: tuple  # two of triplets.CHANGES, in the order asked
    values: tuple  # the asked value of each
    texts: tuple  # the shopper's two phrases, in order
    targets: tuple  # skus with both changes, sorted
    held_out: bool  # the target combination is held out of training


def make_chained_triplets(products, *, seed=0, per_product=1):
    """Return up to ``per_product`` two-change triplets per product of ``products`` (generator products).

    Only pairs of changes (of two different attributes) that some product satisfies become
    triplets. Deterministic in ``seed``.
    """
    rng = np.random.default_rng([seed, 0xC4A1])
    by_attributes = defaultdict(list)
    for product in products:
        by_attributes[product.attributes].append(product.sku)
    triplets = []
    for product in products:
        here = product.attributes
        options = []
        for first in CHANGES:
            for second in CHANGES:
                if first == second:
                    continue
                for one in _VALUES[first]:
                    for two in _VALUES[second]:
                        if one == getattr(here, first) or two == getattr(here, second):
                            continue
                        target = replace(here, **{first: one, second: two})
                        if by_attributes.get(target):
                            options.append((first, one, second, two, target))
        for pick in rng.permutation(len(options))[:per_product]:
            first, one, second, two, target = options[pick]
            texts = []
            for change, value in ((first, one), (second, two)):
                phrases = _phrases(change, value)
                texts.append(phrases[int(rng.integers(len(phrases)))])
            triplets.append(ChainedTriplet(
                reference=product.sku, changes=(first, second), values=(one, two), texts=tuple(texts),
                targets=tuple(sorted(by_attributes[target])), held_out=generator.is_held_out(target)))
    return triplets


def one_sentence(changes, *, joiner=" and "):
    """The shopper's changes, in order, as one change ("in red and with stripes")."""
    return joiner.join(change.strip() for change in changes)


def _rank(vectors, gallery, exclude, top):
    return evaluation.rank_products(vectors, gallery.vectors, gallery.product_names, exclude=exclude, top=top)


def chained_rankings(embedder, triplets, gallery, *, chain, method="pic2word", template=None, top=KS[-1]):
    """Return (rankings, references): each triplet's ``top`` products (skus) and the reference it ranked without.

    ``gallery`` has ``features(sku)`` (raw image features of a product's first image),
    ``vectors`` [m, dim] and ``product_names`` [m] (p2w_evaluate's Gallery). Each ranking leaves
    out its own reference, as the storefront does.
    """
    if chain not in CHAINS:
        raise ValueError(f"unknown chain {chain!r}; choose one of {', '.join(CHAINS)}")
    references = [t.reference for t in triplets]
    features = np.stack([gallery.features(sku) for sku in references])
    firsts, seconds = [t.texts[0] for t in triplets], [t.texts[1] for t in triplets]

    def compose(feats, texts):
        return composed_queries(embedder, image_features=feats, texts=texts, method=method, template=template)

    if chain == "on_first_result":
        best = [ranking[0] for ranking in _rank(compose(features, firsts), gallery, references, 1)]
        then = np.stack([gallery.features(sku) for sku in best])
        return _rank(compose(then, seconds), gallery, best, top), best
    if chain == "sum_of_queries":
        vectors = normalise(compose(features, firsts) + compose(features, seconds))
    elif chain == "second_only":
        vectors = compose(features, seconds)
    elif chain == "one_sentence":
        vectors = compose(features, [one_sentence(t.texts) for t in triplets])
    else:  # measured as the app composes it, so the measurement follows any change to the app's rule
        vectors = compose(features, [chained_change(t.texts) for t in triplets])
    return _rank(vectors, gallery, references, top), references


def measure(rankings, triplets, attributes):
    """Recall of the two-change targets and what the first answers kept: {group: {metric: value, "n": count}}.

    ``R_any@K``: a product with both changes (and the reference's other attributes) among the K
    best. ``first kept`` / ``second applied``: the share of first answers that carry the first /
    second asked value; ``others kept``: that keep both attributes no change touched.
    ``attributes`` maps a sku to its generator Attributes. Groups: all, seen, held-out.
    """
    groups = {"all": list(range(len(triplets))),
              "seen": [i for i, t in enumerate(triplets) if not t.held_out],
              "held-out": [i for i, t in enumerate(triplets) if t.held_out]}
    result = {}
    for name, rows in groups.items():
        picked = [rankings[i] for i in rows]
        values = ranking_metrics.recall_any_at(picked, [frozenset(triplets[i].targets) for i in rows], KS)
        first = [attributes[rankings[i][0]] for i in rows]
        ref = [attributes[triplets[i].reference] for i in rows]
        n = max(len(rows), 1)
        values["first kept"] = sum(getattr(a, triplets[i].changes[0]) == triplets[i].values[0]
                                   for a, i in zip(first, rows)) / n
        values["second applied"] = sum(getattr(a, triplets[i].changes[1]) == triplets[i].values[1]
                                       for a, i in zip(first, rows)) / n
        values["others kept"] = sum(all(getattr(a, c) == getattr(r, c) for c in CHANGES if c not in triplets[i].changes)
                                    for a, r, i in zip(first, ref, rows)) / n
        result[name] = {**values, "n": len(rows)}
    return result


def markdown(results, *, group="all"):
    """One row per (method, chain) for one group of ``results`` {method: {chain: measure()}}."""
    columns = [f"R_any@{k}" for k in KS] + ["first kept", "second applied", "others kept"]
    lines = ["| method | chain | " + " | ".join(columns) + " | queries |",
             "| --- | --- |" + " ---: |" * (len(columns) + 1)]
    for method, chains in results.items():
        for chain, groups in chains.items():
            row = groups[group]
            lines.append(f"| {method} | {chain} | " + " | ".join(f"{row[c]:.3f}" for c in columns)
                         + f" | {row['n']} |")
    return "\n".join(lines)

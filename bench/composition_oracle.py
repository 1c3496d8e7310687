"""Where the first answer is lost (issue 12): the demo CLIP's embeddings, or the composition?

Pic2Word's query is the text tower's reading of "a photo of * , {change}". On the validation
catalogs (seeds 1, 2, 3, triplet seed S + 1; the README's seed 0 is never read) this measures,
with the shipped demo CLIP and mapping and no training:

- **the target in words**: the target's own captions (the generator's, in the phrasings the demo
  CLIP was trained on; their normalised mean, CLIP's prompt ensembling) and, apart, its shop title
  ("Orange striped t-shirt with star print"), each as a text query. Not a method: the search does
  not know the target. It bounds what the image embeddings allow: if they could not tell the
  print or the kind apart, no query could put the right product first.
- **the reference in words, then the change**: "{reference's first caption} , {change}". What
  Pic2Word would get if its pseudo word were the reference's exact description: it measures the
  text tower's composing, with a perfect `*`.
- **the pseudo word alone**: "a photo of *" of the reference against the catalog's photos, scored
  on the products with exactly the reference's attributes (another product than the reference),
  beside the reference's photo and its title for the same products: does `*` carry what the
  photo shows?
- **the shop's text as a second gallery**: the Pic2Word query against each product's title (or
  description) as well as its photo (cosine to the photo + cosine to the text): what the shop's
  text could add at search time.
- **describe, then edit**: the reference's title edited by the text tower's choice, without an
  LLM (the zero-shot family of CIReVL, Karthik et al., ICLR 2024, with a search for an editor):
  every edit of one step (a word of the change in place of one word of the title, one to three
  words dropped, the change appended) is encoded as "a photo of a {edited title}", and the one
  that moves furthest towards "a photo of a product , {change}" is the query.

Any-correct recall (`R_any@K`), CIRR layout (the reference left out), as `rerank_levers` and the
README report it; pic2word here equals the `evaluate_demo` runs (`rerank_levers --check`).

    .venv/bin/python -m bench.composition_oracle        # ~1 min on cached vectors (var/issue12), ~5 without

Writes ``bench/results/composition_oracle.{json,md}`` (``--name`` for another).
"""

import argparse
import re
from pathlib import Path

import numpy as np

from bench._vectors import normalise, setup_django
from bench.rerank_levers import KS, SEEDS, SIZE, Catalog, catalog_vectors, hits, per_change, summary, validation_seeds

REPO = Path(__file__).resolve().parent.parent
NAME = "composition_oracle"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--var", default=str(REPO / "var" / "issue12"), help="where the catalogs' vectors are cached")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--name", default=NAME, help="results name, e.g. for another CLIP (P2W_CLIP_PRETRAINED, "
                                                     "P2W_MAPPING) with its own --var")
    args = parser.parse_args(argv)
    seeds = validation_seeds(parser, args.seeds)
    setup_django()
    from bench.report import write_results
    from p2w_search.embedders import get_embedder
    from shop_demo.catalog import generator

    embedder = get_embedder("default")
    catalogs, titles, descriptions, captions, attributes = [], {}, {}, {}, {}
    for seed in seeds:
        benchmark, names, data = catalog_vectors(embedder, seed, Path(args.var) / f"val{seed}")
        catalogs.append(Catalog(seed, benchmark, names, data))
        products = {p.sku: p for p in generator.generate_products(SIZE, seed=seed)}
        titles[seed] = [products[name].title for name in names]
        descriptions[seed] = [products[name].description for name in names]
        captions[seed] = [products[name].captions for name in names]
        attributes[seed] = [products[name].attributes for name in names]

    methods = {"pic2word (paper prompt)": {}, "the target in words (its captions)": {},
               "the target in words (its title)": {},
               "the reference in words, then the change": {}, "pic2word against photo + title": {},
               "pic2word against photo + description": {}, "the reference's title, edited by the text tower": {}}
    copies = {"the reference's photo": {}, "its pseudo word, 'a photo of *'": {}, "its captions": {},
              "its title": {}}
    for c in catalogs:
        gallery = c.data["gallery"]
        title_vectors = normalise(embedder.embed_texts(titles[c.seed]))  # [m, dim]
        description_vectors = normalise(embedder.embed_texts(descriptions[c.seed]))  # [m, dim]
        caption_vectors = caption_means(embedder, captions[c.seed])  # [m, dim]
        index = {name: i for i, name in enumerate(c.names)}
        target = [index[min(q.correct)] for q in c.benchmark.queries]  # any correct product: one title for all
        described = normalise(embedder.embed_texts([
            f"{captions[c.seed][r][0]} , {q.text}" for r, q in zip(c.ref, c.benchmark.queries)]))
        methods["pic2word (paper prompt)"][c.seed] = c.best_rank(c.base)
        methods["the target in words (its captions)"][c.seed] = c.best_rank(caption_vectors[target] @ gallery.T)
        methods["the target in words (its title)"][c.seed] = c.best_rank(title_vectors[target] @ gallery.T)
        methods["the reference in words, then the change"][c.seed] = c.best_rank(described @ gallery.T)
        methods["pic2word against photo + title"][c.seed] = c.best_rank(c.base + c.data["p2w:paper"] @ title_vectors.T)
        methods["pic2word against photo + description"][c.seed] = c.best_rank(
            c.base + c.data["p2w:paper"] @ description_vectors.T)
        edited = [edit_by_text_tower(embedder, titles[c.seed][r], q.text) for r, q in zip(c.ref, c.benchmark.queries)]
        methods["the reference's title, edited by the text tower"][c.seed] = c.best_rank(np.stack(edited) @ gallery.T)
        for name, queries in (("the reference's photo", gallery), ("its pseudo word, 'a photo of *'",
                                                                    c.data["gallery_word"]),
                              ("its captions", caption_vectors), ("its title", title_vectors)):
            copies[name][c.seed] = same_attribute_ranks(queries @ gallery.T, attributes[c.seed])

    base = methods["pic2word (paper prompt)"]
    results = {"seeds": seeds, "methods": {}, "copies": {}}
    for name, ranks in methods.items():
        results["methods"][name] = {**summary(ranks, catalogs, base), "change R_any@1": per_change(ranks, catalogs, 1),
                                    "change R_any@10": per_change(ranks, catalogs, 10)}
    for name, ranks in copies.items():
        pooled = np.concatenate(list(ranks.values()))
        results["copies"][name] = {"products": len(pooled), **{f"R@{k}": float(hits(pooled, k).mean()) for k in KS}}
    identity = embedder.identity
    results["model"] = f"{identity.architecture}/{identity.weights}@{identity.checksum[:12]}"
    print(write_results(args.name, results, markdown(results)).read_text())


def one_step_edits(title, change):
    """Every edit of ``title`` in one step: a word of ``change`` in place of one of its words, one
    to three words dropped, or ``change`` appended; the title itself too."""
    words, new = title.lower().split(), re.findall(r"[a-z-]+", change.lower())
    edits = {" ".join(words), f"{' '.join(words)} {change.lower()}"}
    for i in range(len(words)):
        edits.update(" ".join(words[:i] + [w] + words[i + 1:]) for w in new)
        edits.update(" ".join(words[:i] + words[i + n:]) for n in (1, 2, 3) if i + n <= len(words))
    return sorted(e for e in edits if e)


_TEXT_CACHE = {}


def _encode(embedder, texts):
    missing = [t for t in dict.fromkeys(texts) if t not in _TEXT_CACHE]
    if missing:
        _TEXT_CACHE.update(zip(missing, normalise(embedder.embed_texts(missing))))
    return np.stack([_TEXT_CACHE[t] for t in texts])


def edit_by_text_tower(embedder, title, change):
    """The query vector of the edit that moves "a photo of a {title}" furthest towards the change."""
    edits = one_step_edits(title, change)
    vectors = _encode(embedder, [f"a photo of a {e}" for e in edits])  # [edits, dim]
    goal = _encode(embedder, [f"a photo of a product , {change}"])[0]
    return vectors[int(np.argmax(vectors @ goal))]


def caption_means(embedder, captions):
    """The normalised mean of each product's normalised caption features [m, dim]."""
    flat = [text for texts in captions for text in texts]
    vectors = normalise(embedder.embed_texts(flat))
    out, start = [], 0
    for texts in captions:
        out.append(vectors[start:start + len(texts)].mean(axis=0))
        start += len(texts)
    return normalise(np.stack(out))


def same_attribute_ranks(scores, attributes):
    """Rank (0 = first) of the best product with exactly product i's attributes, i itself left out,
    for every product that has such a twin."""
    scores = scores.copy()
    np.fill_diagonal(scores, -np.inf)
    keys = np.array([hash(a) for a in attributes])
    same = keys[:, None] == keys[None, :]
    np.fill_diagonal(same, False)
    has = same.any(axis=1)
    best = np.where(same, scores, -np.inf).max(axis=1)
    return (scores > best[:, None]).sum(axis=1)[has]


def markdown(results):
    lines = ["# Where the first answer is lost: the embeddings or the composition",
             "", f"Validation catalogs {results['seeds']} (1000 products each, triplet seed S + 1), model "
             f"{results['model']} and its mapping; any-correct recall, CIRR layout, pooled; paired differences to "
             "pic2word with their standard errors.", "",
             "| query | seen R_any@1 | seen R_any@10 | held-out R_any@1 | held-out R_any@10 | held-out diff@1 (se) | "
             "R_any@1 colour | pattern | kind | print |", "| --- |" + " ---: |" * 9]
    for name, row in results["methods"].items():
        p, ch = row["pooled"], row["change R_any@1"]
        diff = "" if name.startswith("pic2word (paper") else f"{p['held-out diff@1']:+.3f} ({p['held-out se@1']:.3f})"
        lines.append(f"| {name} | {p['seen R_any@1']:.3f} | {p['seen R_any@10']:.3f} | {p['held-out R_any@1']:.3f} | "
                     f"{p['held-out R_any@10']:.3f} | {diff} | "
                     + " | ".join(f"{ch[c]:.3f}" for c in ("colour", "pattern", "kind", "print")) + " |")
    lines += ["", "Does the query find another product with exactly the reference's attributes (products that "
              "have such a twin, pooled)?", "", "| query | products | R@1 | R@10 | R@50 |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, row in results["copies"].items():
        lines.append(f"| {name} | {row['products']} | {row['R@1']:.3f} | {row['R@10']:.3f} | {row['R@50']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

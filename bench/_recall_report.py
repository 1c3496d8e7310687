"""The markdown summary and the plot of ``bench.index_recall``'s results."""

from bench.report import markdown_table, pyplot

__all__ = ["markdown", "plot"]

ENGINES = (("pgvector", "unfiltered"), ("pgvector", "filtered"), ("faiss", "unfiltered"), ("faiss", "filtered"))


def _curve(data, kind, engine, scope):
    return {c["ef"]: c for c in data["curves"]
            if c["queries"] == kind and c["engine"] == engine and c["filter"] == scope}


def _exact(data, kind, engine, scope):
    return next(e for e in data["exact"] if e["queries"] == kind and e["engine"] == engine and e["filter"] == scope)


def markdown(data):
    """Return the results as markdown: setting, verdict on the shipped ef_search, recall and latency tables."""
    c, b = data["config"], data["build"]
    kinds = list(dict.fromkeys(x["queries"] for x in data["curves"]))
    lines = [
        "# Recall of the HNSW index: pgvector (the app's search) and FAISS",
        "",
        f"Gallery: {c['gallery']:,} demo products, one image each, embedded with `{c['model']}` "
        f"({c['dimensions']} dimensions) and stored by the app (halfvec). Partial HNSW index of "
        f"`p2w_search.index`, m {c['hnsw_m']}, ef_construction {c['hnsw_ef_construction']}, built after the "
        f"load in {b['index_build_s']:.1f} s (maintenance_work_mem {c['index_build_memory']}); FAISS "
        f"`IndexHNSWFlat` with the same m and ef_construction: {b['faiss_build_s']:.1f} s "
        f"({b['faiss_build_s'] / b['index_build_s']:.2f} x pgvector's build). "
        + (f"This run loaded the catalog in {b['catalog_s']:.0f} s and embedded {b['embedded']:,} images in "
           f"{b['embed_s']:.0f} s ({b['embedded'] / b['embed_s']:.0f} images/s)." if b["embedded"] else
           "The catalog was loaded and embedded by an earlier run."),
        "",
        f"Queries: {c['queries_per_kind']} held-out products of each kind (another generator seed, never "
        "stored): `pic2word`, composed with a change text (the real workload), and `image_only`, their "
        f"image embeddings. Filter: `{c['filter']}`, a kind drawn per query independently of it, keeping "
        f"{c['filter_selectivity']:.1%} of the products. Recall@{c['k']}: {c['recall']}.",
        "",
        "## The shipped ef_search",
        "",
        markdown_table(
            ["queries", "filter", "ef_search", f"Recall@{c['k']}", f">= {c['target_recall']}",
             f"smallest ef_search >= {c['target_recall']}", "its recall"],
            [[s["queries"], s["filter"], s["shipped_ef_search"], s["recall_at_shipped"],
              "yes" if s["reaches_target"] else "**no**", s["smallest_ef_search_reaching_target"] or "none <= 1000",
              s["recall_at_smallest"] if s["recall_at_smallest"] is not None else "-"]
             for s in data["shipped"]]),
        "",
    ]
    for kind in kinds:
        curves = {key: _curve(data, kind, *key) for key in ENGINES}
        exact = {key: _exact(data, kind, *key) for key in ENGINES}
        header = ["ef"] + [f"{engine} {scope}" for engine, scope in ENGINES]
        lines += [
            f"## `{kind}` queries",
            "",
            f"Recall@{c['k']} (mean over queries; in brackets the share of queries below 0.9, and the mean "
            "number of results when fewer than k came back):",
            "",
            markdown_table(header, [[ef] + [_recall_cell(curves[key][ef], c["k"]) for key in ENGINES]
                                    for ef in c["ef_grid"]]),
            "",
            "Latency p50 / p95 in ms, and p50 as a ratio to the same engine's exact search of the same "
            "queries (pgvector: the SQL with index scans off; FAISS: `IndexFlatIP`); pgvector's times are "
            "the app's whole `nearest_products` call through Django, FAISS's one in-process call:",
            "",
            markdown_table(header, [[ef] + [f"{curves[key][ef]['p50']:.2f} / {curves[key][ef]['p95']:.2f} "
                                            f"({curves[key][ef]['p50_vs_exact']:.3f})" for key in ENGINES]
                                    for ef in c["ef_grid"]]),
            "",
            "Exact search (the baselines): " + "; ".join(
                f"{engine} {scope} p50 {exact[(engine, scope)]['p50']:.2f} ms over {exact[(engine, scope)]['n']} "
                f"queries (Recall@{c['k']} against the numpy ground truth {exact[(engine, scope)]['recall_vs_numpy']:.3f})"
                for engine, scope in ENGINES) + ".",
            "",
        ]
    lines += ["## Query plans", ""]
    for scope, plan in data["plans"].items():
        uses = plan["uses_hnsw_index"]
        used = ", ".join(f"{label}: {'yes' if used else '**no**'}" for label, used in uses.items())
        lines += [f"{scope}: the planner uses the HNSW index ({used}); the plan for "
                  f"`{next(iter(uses))}`:", "", "```", plan["plan"], "```", ""]
    lines += ["![recall against latency](index_recall.png)", ""]
    return "\n".join(lines)


def _recall_cell(point, k):
    cell = f"{point['recall']:.3f} ({point['share_below_0.9']:.0%})"
    if point["returned"] < k:
        cell += f" [{point['returned']:.1f}]"
    return cell


def plot(data, path):
    """Recall@k against p50 latency, one panel per query kind, one curve per engine and filter."""
    plt = pyplot()

    c = data["config"]
    kinds = list(dict.fromkeys(x["queries"] for x in data["curves"]))
    styles = {("pgvector", "unfiltered"): ("tab:blue", "-"), ("pgvector", "filtered"): ("tab:blue", "--"),
              ("faiss", "unfiltered"): ("tab:orange", "-"), ("faiss", "filtered"): ("tab:orange", "--")}
    figure, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 5), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for key, (colour, dash) in styles.items():
            curve = _curve(data, kind, *key)
            efs = sorted(curve)
            ax.plot([curve[ef]["recall"] for ef in efs], [curve[ef]["p50"] for ef in efs], dash, color=colour,
                    marker="o", markersize=4, label=" ".join(key))
            for ef in efs:
                ax.annotate(str(ef), (curve[ef]["recall"], curve[ef]["p50"]), fontsize=7,
                            textcoords="offset points", xytext=(3, 3), color=colour)
        ax.axvline(c["target_recall"], color="grey", linewidth=0.8, linestyle=":")
        ax.set_yscale("log")
        ax.set_xlabel(f"Recall@{c['k']} (labels: ef_search)")
        ax.set_ylabel("p50 latency per query, ms (log)")
        ax.set_title(f"{kind} queries, {c['gallery']:,} vectors x {c['dimensions']} d")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(f"HNSW m={c['hnsw_m']}, ef_construction={c['hnsw_ef_construction']}; "
                    f"filter keeps {c['filter_selectivity']:.0%} of products")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

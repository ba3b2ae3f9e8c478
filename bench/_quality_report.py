"""``bench.quality`` output: a Markdown table and PNG plots (matplotlib, Agg backend) from the result payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STAGES = ("exact", "ann", "fused", "reranked")
STAGE_LABELS = {"exact": "exact (numpy)", "ann": "ANN (FAISS)", "fused": "fused (Engine.search)",
                "reranked": "re-ranked"}


def _cell(value: Any, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(payload: dict[str, Any]) -> str:
    """One table row per direction and stage; unavailable stages are listed with their reason."""
    machine = payload.get("machine", {})
    class_level = payload["protocol"] == "class"
    lines = [
        f"# bench.quality: {payload['dataset']} with {payload['preset']}", "",
        f"{payload['description']}. Protocol: {payload['protocol']} level. "
        f"Commit {machine.get('commit') or '?'}, {machine.get('date', '?')}, {machine.get('cpu', '?')} "
        f"({machine.get('cpu_count', '?')} CPUs, {machine.get('torch_threads', '?')} torch threads{_load(payload)}).", "",
        "ms/query: one query's top results, timed alone (mean). exact and ANN search pre-encoded query vectors; "
        "fused and re-ranked run `Engine.search` end to end, query encoding included "
        "(single-query encoding alone is shown per direction).", "",
        "| direction | queries | corpus | stage | R@1 | R@5 | R@10 |" + (" mAP |" if class_level else "") + " ms/query |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |" + (" ---: |" if class_level else "") + " ---: |",
    ]
    notes: dict[tuple[str, str], list[str]] = {}  # (stage, reason) -> directions
    for name, d in payload["directions"].items():
        for stage in STAGES:
            f = d["stages"].get(stage)
            row = f"| {name} | {d['queries']} | {d['corpus']} | {STAGE_LABELS[stage]} |"
            if f is None:
                row += " — | — | — |" + (" — |" if class_level else "") + " — |"
                notes.setdefault((stage, d["unavailable"].get(stage, "not run")), []).append(name)
            else:
                row += f" {_cell(f['R@1'])} | {_cell(f['R@5'])} | {_cell(f['R@10'])} |"
                row += (f" {_cell(f.get('mAP'))} |" if class_level else "") + f" {_cell(f['ms_per_query'], 3)} |"
            lines.append(row)
    lines += ["", "Query encoding alone (one query, mean ms): " + ", ".join(
        f"{n} {_cell(d['query_encode_ms'], 2)}" for n, d in payload["directions"].items()) + "."]
    tied = {n: d.get("corpus_tied", 0) for n, d in payload["directions"].items()}
    if any(tied.values()):
        lines += ["", "Corpus items whose vector equals another item's (exact ties, which each stage breaks its own way, "
                  "so stages may differ slightly): " + ", ".join(f"{n} {t}" for n, t in tied.items()) + "."]
    if notes:
        lines += ["", "Stages not measured:", *(f"- {STAGE_LABELS[stage]} ({', '.join(names)}): {reason}"
                                               for (stage, reason), names in notes.items())]
    lines += ["", "ANN indexes (built over the same vectors as exact): " + "; ".join(
        f"{k}: {_index(v)}" for k, v in payload["ann_indexes"].items()) + "."]
    store = payload["store"]
    lost = (f", {store['missing_from_store']} corpus files absent from the store (never retrievable when fused)"
            if store.get("missing_from_store") else "")
    lines += [f"Store: {store['items']} items ingested in {store['ingest_seconds']:.1f} s "
              f"({store['failed']} failed{lost}); indexes: " + "; ".join(f"{k}: {_index(v)}" for k, v in store["indexes"].items()) + "."]
    return "\n".join(lines) + "\n"


def _load(payload: dict[str, Any]) -> str:
    load = payload.get("load_average_1min")
    return f", 1-min load average {load['start']} at start, {load['end']} at end" if load else ""


def _index(info: dict[str, Any] | str) -> str:
    if isinstance(info, str):
        return info
    params = ", ".join(f"{k}={v}" for k, v in info["params"].items()) or "no search parameters"
    return f"`{info['factory']}` ({params}; tuned recall@10 {info['tuned_recall_at_10']})"


def plots(payload: dict[str, Any], folder: str | Path) -> list[Path]:
    """Recall@k curves per direction and stage, and recall@10 against ms/query; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"quality-{payload['dataset']}-{payload['preset']}"
    directions = payload["directions"]
    cols = min(4, len(directions))
    rows = -(-len(directions) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, sharey=True)
    for ax, (name, d) in zip(axes.flat, directions.items()):
        for s, stage in enumerate(STAGES):
            f = d["stages"].get(stage)
            if f is not None:  # styles differ so that identical curves stay visible on top of each other
                ks = [int(k) for k in f["curve"]]
                ax.plot(ks, list(f["curve"].values()), color=f"C{s}", linestyle=("-", "--", ":", "-.")[s],
                        marker="o", markersize=6 - 1.5 * s, linewidth=2.2 - 0.4 * s, label=STAGE_LABELS[stage])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("k")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(directions):]:
        ax.axis("off")
    axes[0][0].set_ylabel("recall@k")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{payload['dataset']} / {payload['preset']}: recall@k per stage", fontsize=10)
    fig.tight_layout()
    curves = out / f"{stem}-recall.png"
    fig.savefig(curves, dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4))
    markers = "osD^v<>pP*"
    lowest = 1.0
    for s, stage in enumerate(STAGES):
        for m, d in enumerate(directions.values()):
            f = d["stages"].get(stage)
            if f is not None and f["ms_per_query"]:
                ax.scatter(f["ms_per_query"], f["R@10"], color=f"C{s}", marker=markers[m % len(markers)], alpha=0.8)
                lowest = min(lowest, f["R@10"])
    from matplotlib.lines import Line2D

    shown = [s for s in STAGES if any(d["stages"].get(s) for d in directions.values())]
    stage_legend = ax.legend([Line2D([], [], color=f"C{STAGES.index(s)}", marker="o", linestyle="") for s in shown],
                             [STAGE_LABELS[s] for s in shown], fontsize=7, loc="lower left", title="stage",
                             title_fontsize=7)
    ax.add_artist(stage_legend)
    ax.legend([Line2D([], [], color="gray", marker=markers[m % len(markers)], linestyle="") for m in range(len(directions))],
              list(directions), fontsize=7, loc="lower right", title="direction", title_fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("ms per query (log)")
    ax.set_ylabel("recall@10")
    ax.set_ylim(max(0.0, lowest - 0.35), 1.02)  # room below the points for the legends
    ax.grid(alpha=0.3)
    ax.set_title(f"{payload['dataset']} / {payload['preset']}: recall@10 against latency", fontsize=10)
    fig.tight_layout()
    latency = out / f"{stem}-latency.png"
    fig.savefig(latency, dpi=90)
    plt.close(fig)
    return [curves, latency]

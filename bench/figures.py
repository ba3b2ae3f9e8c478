"""``xmodal bench figures``: the README's figures table, regenerated from ``bench/results/*.json``.

Every row names the JSON it was read from and that file's date and commit; a file that is missing gives a
"not measured" row rather than an old number. The table is written between ``<!-- figures:begin -->`` and
``<!-- figures:end -->`` and nothing else in the README is touched; rewriting an unchanged table is a no-op.
"""

from __future__ import annotations

import argparse
import json
import operator
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._errors import MarkersNotFound

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
_OPS = {">=": operator.ge, "<=": operator.le}

Value = Callable[[dict[str, Any]], "float | str | None"]


@dataclass(frozen=True)
class Goal:
    """``op`` is ``>=`` or ``<=``; ``target`` a number or read from the same JSON (e.g. the baseline it must beat)."""

    op: str
    target: float | Callable[[dict[str, Any]], float | None]
    label: str = ""


@dataclass(frozen=True)
class Figure:
    """One README row: what is measured, which results file holds it, how to read it, and its goal if any."""

    what: str
    source: str
    value: Value
    fmt: str = "{:.3f}"
    goal: Goal | None = None


@dataclass(frozen=True)
class Row:
    """A rendered table row."""

    what: str
    figure: str
    goal: str
    met: str
    source: str
    when: str


def dig(payload: Any, *path: Any) -> Any:
    """``payload[p0][p1]...``, or None where any step is missing; a dict step on a list finds the matching row."""
    for step in path:
        if isinstance(step, dict) and isinstance(payload, list):
            payload = next((r for r in payload if all(r.get(k) == v for k, v in step.items())), None)
        elif isinstance(payload, dict):
            payload = payload.get(step)
        else:
            return None
        if payload is None:
            return None
    return payload


def _at(*path: Any) -> Value:
    """Read ``path``; where a section on the way says it failed or was skipped, that message is the figure."""
    def read(p: dict[str, Any]) -> float | str | None:
        for depth in range(len(path)):
            section = dig(p, *path[:depth])
            if isinstance(section, dict):
                for key, word in (("skipped", "skipped"), ("error", "failed")):
                    if key in section:
                        why = section[key]
                        why = " ".join(map(str, why)) if isinstance(why, list) else str(why)
                        return f"{word}: {why[:120]}"
        return dig(p, *path)
    return read


def _enc(modality: str, precision: str) -> Value:
    return _at("encode", "results", {"modality": modality, "precision": precision, "batch_size": 32}, "ratio_vs_bare")


def _idx(size: str, kind: str, key: str) -> Value:
    return _at("index", size, "results", {"kind": kind}, key)


def _ten_m(key: str) -> Value:
    return _at("results", {"kind": "ivf-pq"}, key)


AT_LEAST_95 = Goal(">=", 0.95)
OVERHEAD = Goal("<=", 1.10)
FIGURES: tuple[Figure, ...] = (
    Figure("encode, image fp32 batch 32: xmodal / bare open_clip throughput", "speed.json", _enc("image", "fp32"), goal=AT_LEAST_95),
    Figure("encode, image bf16 batch 32: xmodal / bare open_clip throughput", "speed.json", _enc("image", "bf16"), goal=AT_LEAST_95),
    Figure("encode, text fp32 batch 32: xmodal / bare open_clip throughput", "speed.json", _enc("text", "fp32"), goal=AT_LEAST_95),
    Figure("encode, audio fp32 batch 32: xmodal / bare CLAP throughput", "speed.json", _enc("audio", "fp32"), goal=AT_LEAST_95),
    Figure("ingest, JPEGs fp32: images/s", "speed.json", _at("ingest", "results", {"precision": "fp32"}, "ingest_img_per_s"), "{:.2f}"),
    Figure("ingest, JPEGs fp32: whole ingest / bare encode_image throughput", "speed.json",
           _at("ingest", "results", {"precision": "fp32"}, "ratio_vs_bare"), goal=Goal(">=", 0.85)),
    Figure("index 100k (IVF-Flat, the automatic choice): batched QPS", "speed.json", _idx("100k", "ivf-flat", "batched_qps"), "{:.0f}"),
    Figure("index 100k IVF-Flat: recall@10", "speed.json", _idx("100k", "ivf-flat", "recall_at_10"), "{:.4f}", AT_LEAST_95),
    Figure("index 100k IVF-Flat: xmodal / raw faiss batched search time", "speed.json", _idx("100k", "ivf-flat", "overhead_ratio"), goal=OVERHEAD),
    Figure("index 1M (IVF-Flat, the automatic choice): batched QPS", "speed.json", _idx("1M", "ivf-flat", "batched_qps"), "{:.0f}"),
    Figure("index 1M IVF-Flat: single query p50, ms", "speed.json", _idx("1M", "ivf-flat", "single_p50_ms")),
    Figure("index 1M IVF-Flat: single query p99, ms", "speed.json", _idx("1M", "ivf-flat", "single_p99_ms")),
    Figure("index 1M IVF-Flat: recall@10", "speed.json", _idx("1M", "ivf-flat", "recall_at_10"), "{:.4f}", AT_LEAST_95),
    Figure("index 1M IVF-Flat: xmodal / raw faiss batched search time", "speed.json", _idx("1M", "ivf-flat", "overhead_ratio"), goal=OVERHEAD),
    Figure("index 1M IVF-Flat: peak RSS of build + search, GiB", "speed.json", _idx("1M", "ivf-flat", "peak_rss_gib"), "{:.2f}"),
    Figure("index 1M IVF-PQ + refine: recall@10", "speed.json", _idx("1M", "ivf-pq", "recall_at_10"), "{:.4f}", AT_LEAST_95),
    Figure("index 1M IVF-PQ + refine: peak RSS, GiB", "speed.json", _idx("1M", "ivf-pq", "peak_rss_gib"), "{:.2f}"),
    Figure("query over 1M, end to end (xmodal-mini text tower): p50, ms", "speed.json",
           _at("query", "1M", "end_to_end", "p50_ms"), "{:.1f}", Goal("<=", 15.0)),
    Figure("query over 1M, end to end, `python -m bench.query` on an idle machine: p50, ms",
           "query-xmodal-mini-1m.json", _at("end_to_end", "p50_ms"), "{:.1f}", Goal("<=", 15.0)),
    Figure("query over 1M, end to end: p99, ms", "speed.json", _at("query", "1M", "end_to_end", "p99_ms"), "{:.1f}"),
    Figure("index 10M (IVF-PQ + refine): recall@10", "index-10m.json", _ten_m("recall_at_10"), "{:.4f}", AT_LEAST_95),
    Figure("index 10M: xmodal / raw faiss batched search time", "index-10m.json", _ten_m("overhead_ratio"), goal=OVERHEAD),
    Figure("index 10M: single query p50, ms", "index-10m.json", _ten_m("single_p50_ms")),
    Figure("index 10M: peak RSS, GiB", "index-10m.json", _ten_m("peak_rss_gib"), "{:.2f}"),
    Figure("peer rclip-style brute force, 100k: its p50 latency / xmodal's", "peers.json",
           _at("rclip", "100k", "latency_ratio_rclip_over_xmodal"), "{:.1f}", Goal(">=", 1.0)),
    Figure("peer rclip-style, 100k: xmodal recall@10 against its exact top 10", "peers.json",
           _at("rclip", "100k", "xmodal_recall_at_10_vs_rclip"), "{:.4f}", AT_LEAST_95),
    Figure("peer rclip-style brute force, 1M: its p50 latency / xmodal's", "peers.json",
           _at("rclip", "1M", "latency_ratio_rclip_over_xmodal"), "{:.1f}", Goal(">=", 1.0)),
    Figure("peer rclip-style, 1M: xmodal recall@10 against its exact top 10", "peers.json",
           _at("rclip", "1M", "xmodal_recall_at_10_vs_rclip"), "{:.4f}", AT_LEAST_95),
    Figure("peer clip-retrieval `clip inference`: xmodal ingest / its images/s (ViT-B-32 fp32)", "peers.json",
           _at("clip_retrieval", "throughput_ratio_xmodal_over_clip_retrieval"), goal=Goal(">=", 0.9)),
    Figure("fusion (xmodal-mini, mixed store, any kind): probability P@1 of audio queries", "fusion-xmodal-mini.json",
           _at("results", "probability", "by_kind", "audio", "p1"), "{:.4f}",
           Goal(">=", _at("results", "calibrated", "by_kind", "audio", "p1"), "calibrated's")),
    Figure("re-ranker, scenes text->image R@1: re-ranked (depth 50)", "rerank-xmodal-mini.json",
           _at("directions", "scenes:text->image", "reranked@50", "R@1"), "{:.4f}",
           Goal(">=", lambda p: (dig(p, "directions", "scenes:text->image", "first_stage", "R@1") or 0) + 0.10,
                "first stage +0.10:")),
    Figure("re-ranker, scenes image->text R@1: re-ranked (depth 50)", "rerank-xmodal-mini.json",
           _at("directions", "scenes:image->text", "reranked@50", "R@1"), "{:.4f}",
           Goal(">=", _at("directions", "scenes:image->text", "first_stage", "R@1"), "first stage")),
    Figure("re-ranker, ESC-10 fold 5 audio->text R@1: default search (re-ranker off for audio)", "rerank-xmodal-mini.json",
           _at("directions", "esc10-fold5:audio->text", "fused", "R@1"), "{:.4f}",
           Goal(">=", _at("directions", "esc10-fold5:audio->text", "first_stage", "R@1"), "first stage")),
    *[Figure(f"re-ranker, scenes {d}: ms added per query at depth {depth}", "rerank-xmodal-mini.json",
             _at("directions", f"scenes:{d}", f"reranked@{depth}", "added_ms_p50"), "{:.1f}", Goal("<=", 30.0))
      for d in ("text->image", "image->text") for depth in (50, 100)],
    Figure("ESC-10 fold 5, audio->text R@1 (nearest class caption = classification accuracy)",
           "quality-esc10-xmodal-mini.json", _at("directions", "audio->text", "stages", "exact", "R@1"), "{:.4f}",
           Goal(">=", 0.85)),
    Figure("FSDD held-out speakers, speech->image mAP", "quality-fsdd-xmodal-mini.json",
           _at("directions", "audio->image", "stages", "exact", "mAP"), "{:.4f}", Goal(">=", 0.90)),
    Figure("FSDD held-out speakers, image->speech mAP", "quality-fsdd-xmodal-mini.json",
           _at("directions", "image->audio", "stages", "exact", "mAP"), "{:.4f}", Goal(">=", 0.90)),
    Figure("scenes test, text->image R@1 (first stage, exact)", "quality-scenes-xmodal-mini.json",
           _at("directions", "text->image", "stages", "exact", "R@1"), "{:.4f}"),
    Figure("server (xmodal-mini, 32 clients): requests/s", "serve-mini.json", _at("req_per_s"), "{:.0f}"),
    Figure("server: p99 latency, ms", "serve-mini.json", _at("p99_ms"), "{:.1f}"),
    Figure("server: failed requests", "serve-mini.json", _at("errors"), "{:.0f}", Goal("<=", 0)),
    Figure("server, distinct texts (32 clients), e38e491: requests/s", "serve-mini-distinct-idle.json",
           _at("servers", "before", "req_per_s"), "{:.1f}"),
    Figure("server, distinct texts (32 clients), now: requests/s", "serve-mini-distinct-idle.json",
           _at("servers", "after", "req_per_s"), "{:.1f}"),
    Figure("server, distinct texts: now / e38e491 requests/s", "serve-mini-distinct-idle.json",
           _at("speedup_req_per_s"), "{:.2f}", Goal(">=", 2.0)),
    Figure("server, distinct texts, now: p99 latency, ms", "serve-mini-distinct-idle.json",
           _at("servers", "after", "p99_ms"), "{:.1f}", Goal("<=", 100.0)),
    Figure("server, distinct texts, now: failed requests", "serve-mini-distinct-idle.json",
           _at("servers", "after", "errors"), "{:.0f}", Goal("<=", 0)),
    Figure("query at 20k beside a running xmodal ingest, e38e491: p99, ms", "query-20k-before-busy.json",
           _at("end_to_end", "p99_ms"), "{:.1f}"),
    Figure("query at 20k beside a running xmodal ingest, now: p99, ms", "query-20k-after-busy.json",
           _at("end_to_end", "p99_ms"), "{:.1f}", Goal("<=", 100.0)),
    Figure("startup, `xmodal --help`: median s", "startup-before-after.json",
           _at("figures", "this", "--help", "median_s"), "{:.2f}", Goal("<=", 1.0)),
)


def _when(payload: dict[str, Any], path: Path) -> str:
    """The run's date and commit from the JSON; for older files without them, the commit that added the file."""
    machine = payload.get("machine") or {}
    date, commit = str(machine.get("date") or payload.get("started") or "")[:10], machine.get("commit")
    if date and commit:
        return f"{date} / {commit}"
    try:
        logged = subprocess.run(["git", "log", "-1", "--format=%cs %h", "--", path.name], cwd=path.parent,
                                capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        logged = []
    if len(logged) == 2:
        return f"{date or logged[0]} / {logged[1]} (file's commit)"
    return f"{date or '?'} / ?"


def evaluate(figure: Figure, payload: dict[str, Any] | None, path: Path) -> Row:
    """One row from a figure and its results file (None when the file is missing)."""
    goal_text, met = "", "—"
    value = figure.value(payload) if payload is not None else None
    target = None
    if figure.goal is not None:
        g = figure.goal
        target = g.target(payload) if callable(g.target) and payload is not None else (None if callable(g.target) else g.target)
        shown = f"{target:g}" if target is not None else "?"
        goal_text = f"{g.op} {g.label + ' ' if g.label else ''}{shown}"
    if payload is None:
        text = "not measured"
    elif value is None:
        text = "not in results"
    elif isinstance(value, str):
        text = value
    else:
        text = figure.fmt.format(value)
        if figure.goal is not None and target is not None:
            met = "yes" if _OPS[figure.goal.op](value, target) else "no"
    when = _when(payload, path) if payload is not None else "—"
    return Row(figure.what, text, goal_text, met, f"`bench/results/{figure.source}`", when)


def build_rows(results: Path = RESULTS, figures: tuple[Figure, ...] = FIGURES) -> list[Row]:
    """Evaluate every figure against the JSON files in ``results``."""
    cache: dict[str, dict[str, Any] | None] = {}
    for f in figures:
        if f.source not in cache:
            path = results / f.source
            cache[f.source] = json.loads(path.read_text()) if path.is_file() else None
    return [evaluate(f, cache[f.source], results / f.source) for f in figures]


def render(rows: list[Row]) -> str:
    """The markdown table, with a line saying how it is made."""
    cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["Generated by `xmodal bench figures` from `bench/results/*.json`; edit the JSON's producer, not this table.",
             "", "| what | figure | goal | met? | source | date / commit |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {cell(r.what)} | {cell(r.figure)} | {cell(r.goal)} | {r.met} | {r.source} | {r.when} |" for r in rows]
    return "\n".join(lines)


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with everything between the figures markers replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise MarkersNotFound(f"the README has no {BEGIN} ... {END} pair to write the figures table between")
    return f"{text[: start + len(BEGIN)]}\n{block}\n{text[end:]}"


def update_readme(readme: Path = README, results: Path = RESULTS) -> bool:
    """Rewrite the table in ``readme`` from ``results``; True when the file changed."""
    old = readme.read_text()
    new = replace_between_markers(old, render(build_rows(results)))
    if new != old:
        readme.write_text(new)
    return new != old


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``xmodal bench figures``."""
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of results JSON (default bench/results)")
    p.add_argument("--readme", type=Path, default=README, help="file holding the figures markers (default README.md)")
    p.add_argument("--print", dest="print_only", action="store_true", help="print the table instead of writing it")


def run(args: argparse.Namespace) -> bool:
    """Print or write the table; True when the README changed."""
    if args.print_only:
        print(render(build_rows(args.results)))
        return False
    changed = update_readme(args.readme, args.results)
    print(f"{args.readme}: figures table {'rewritten' if changed else 'already up to date'}")
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.figures`` (``xmodal bench figures``)."""
    parser = argparse.ArgumentParser(prog="xmodal bench figures", description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))

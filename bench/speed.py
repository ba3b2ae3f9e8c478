"""``xmodal bench speed``: encode, ingest, index and query speed in one run, each against its bare library.

Orchestrates the existing benchmarks, each in its own process (so each peak RSS is its own): ``bench.encode``
(xmodal ``encode`` vs a bare open_clip / CLAP loop), ``bench.ingest`` (whole ingest vs bare ``encode_image``),
``bench.index`` (xmodal's ``FaissIndex`` vs the raw faiss object, per index type and size) and ``bench.query``
(end-to-end text queries over a store of that size). Every ratio is measured within the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path
from typing import Any

from bench._child import run_module
from bench._errors import BenchError, InvalidBenchArgs
from bench.report import machine_info, write_json

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("encode", "ingest", "index", "query")
QUERY_MAX = 4_000_000  # bench.query writes every vector through the catalog: beyond this it takes hours
HNSW_MAX = 200_000  # HNSW32 took 508 s to build at 1M on this machine: opt-in there via --kinds

# (full run, --quick run) arguments of each child benchmark.
ENCODE_ARGS = (["--preset", "clip-vit-b32", "--random", "--batch-sizes", "1,32"],
               ["--preset", "clip-vit-b32", "--random", "--modalities", "image,text", "--batch-sizes", "1,8",
                "--min-seconds", "0.3", "--min-batches", "1", "--rounds", "1"])
INGEST_ARGS = (["--n", "300"], ["--n", "64", "--precisions", "fp32"])
QUERY_QUERIES = ("300", "30")


def parse_size(text: str) -> int:
    """``100k`` -> 100000, ``1M`` -> 1000000, ``2500`` -> 2500; raises ``InvalidBenchArgs`` otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m:
        raise InvalidBenchArgs(f"not a corpus size: {text!r} (use e.g. 100k, 1M, 250000)")
    n = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if n < 1000:
        raise InvalidBenchArgs(f"corpus size {text!r} is below 1000 vectors")
    return int(n)


def parse_sizes(text: str) -> list[int]:
    """A comma-separated list of sizes."""
    return [parse_size(part) for part in text.split(",") if part.strip()]


def kinds_for(n: int) -> list[str]:
    """Index types measured by default at size ``n``."""
    from bench import index as index_bench  # faiss: imported only when an index stage runs

    kinds = index_bench.default_kinds(n)
    return kinds if n <= HNSW_MAX else [k for k in kinds if k != "hnsw"]


def size_label(n: int) -> str:
    """1000000 -> '1M', 100000 -> '100k'."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xmodal bench speed", description=__doc__.splitlines()[0])
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``xmodal bench speed`` (shared with ``python -m bench.speed``)."""
    p.add_argument("--sizes", default=None, help="comma-separated index/query sizes (default 100k,1M; 10M is opt-in)")
    p.add_argument("--quick", action="store_true", help="smoke-size run: 20k vectors, fewer configurations, a few minutes")
    p.add_argument("--kinds", default=None, help="comma-separated index types (default per size: flat, ivf-flat, ivf-pq, "
                   f"and hnsw up to {HNSW_MAX // 1000}k)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated stages to run, of {', '.join(STAGES)}")
    p.add_argument("--query-preset", default="xmodal-mini", help="preset whose text tower encodes bench.query's queries")
    p.add_argument("--workdir", type=Path, default=RESULTS / "tmp" / "speed", help="scratch folder (stores are reused)")
    p.add_argument("--json", dest="json_out", type=Path, default=None,
                   help="results file (default bench/results/speed.json, or bench/results/tmp/speed-quick.json with --quick)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the requested stages and write JSON after each one; returns the payload."""
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise InvalidBenchArgs(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    sizes = parse_sizes(args.sizes) if args.sizes else ([20_000] if args.quick else [100_000, 1_000_000])
    from bench import index as index_bench  # faiss: only once the arguments are known to be good
    from bench._index_run import RunSpec

    q = 1 if args.quick else 0
    out = args.json_out or (RESULTS / "tmp" / "speed-quick.json" if args.quick else RESULTS / "speed.json")
    work = args.workdir
    payload: dict[str, Any] = {"bench": "speed", "quick": args.quick, "sizes": sizes, "stages": stages,
                               "kinds": args.kinds, "machine": machine_info(), "loadavg_start": list(os.getloadavg())}
    t_start = time.perf_counter()
    failed: list[str] = []
    # index and query first, then ingest, then encode: on a busy machine the long model stages come last
    for n in sizes:
        label = size_label(n)
        if "index" in stages:
            kinds = args.kinds.split(",") if args.kinds else (["flat", "ivf-flat"] if args.quick else kinds_for(n))
            print(f"== index at {label}: {', '.join(kinds)} (xmodal FaissIndex vs the raw faiss object)", flush=True)
            base = RunSpec(kind="", n=n, dim=512)
            if args.quick:
                base = RunSpec(kind="", n=n, dim=512, queries=200, tune_queries=64, single_queries=50, pairs=3,
                               pair_seconds=0.3)
            payload.setdefault("index", {})[label] = index_bench.run_kinds(base, kinds)
            write_json(out, payload)
        if "query" in stages:
            if n > QUERY_MAX:
                print(f"== query at {label}: skipped (bench.query builds its store through the catalog; "
                      f"sizes above {size_label(QUERY_MAX)} take hours)", flush=True)
                continue
            print(f"== query at {label}: end-to-end text queries ({args.query_preset})", flush=True)
            argv = ["--preset", args.query_preset, "--n", str(n), "--queries", QUERY_QUERIES[q],
                    "--workdir", str(RESULTS / "tmp" / "query")]
            payload.setdefault("query", {})[label] = _stage(failed, "bench.query", argv, work / f"query-{label}.json")
            write_json(out, payload)
    if "ingest" in stages:
        print("== ingest: whole ingest vs bare encode_image", flush=True)
        payload["ingest"] = _stage(failed, "bench.ingest", [*INGEST_ARGS[q], "--workdir", str(work / "ingest")],
                                   work / "ingest.json")
        write_json(out, payload)
    if "encode" in stages:
        print("== encode: xmodal encode vs bare open_clip / CLAP loops", flush=True)
        payload["encode"] = _stage(failed, "bench.encode", ENCODE_ARGS[q], work / "encode.json")
        write_json(out, payload)
    payload["loadavg_end"] = list(os.getloadavg())
    payload["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    write_json(out, payload)
    print_summary(payload)
    print(f"wrote {out}")
    if failed:
        raise BenchError(f"stage(s) failed, the others' figures are in {out}: " + "; ".join(failed))
    return payload


def _stage(failed: list[str], module: str, argv: list[str], json_path: Path) -> dict[str, Any]:
    """One child benchmark's payload plus its peak RSS and wall time, or ``{"error": ...}`` (noted in ``failed``)."""
    try:
        res = run_module(module, argv, json_path)
    except BenchError as exc:
        failed.append(str(exc))
        return {"error": str(exc)}
    return _strip(res.payload) | {"peak_rss_gib": res.peak_rss_gib, "wall_seconds": res.wall_seconds}


def _strip(child: dict[str, Any]) -> dict[str, Any]:
    """A child's payload without its own machine block (the run's is at the top), keeping its commit and date."""
    return {k: v for k, v in child.items() if k != "machine"}


def print_summary(payload: dict[str, Any]) -> None:
    """One line per headline ratio."""
    for row in payload.get("encode", {}).get("results", []):
        if row["batch_size"] == 32 or payload.get("quick"):
            print(f"encode {row['modality']} {row['precision']} batch {row['batch_size']}: ratio vs bare {row['ratio_vs_bare']}")
    for row in payload.get("ingest", {}).get("results", []):
        print(f"ingest {row['precision']}: {row['ingest_img_per_s']} img/s, ratio vs bare encode_image {row['ratio_vs_bare']}")
    for label, report in payload.get("index", {}).items():
        for row in report["results"]:
            if "error" in row:
                print(f"index {label} {row['kind']}: error {row['error']}")
                continue
            print(f"index {label} {row['kind']} ({row['factory']}): {row['batched_qps']} QPS (raw faiss "
                  f"{row['raw_faiss_batched_qps']}), p50 {row['single_p50_ms']} ms, p99 {row['single_p99_ms']} ms, "
                  f"recall@10 {row['recall_at_10']}, overhead vs raw faiss {row['overhead_ratio']}, RSS {row['peak_rss_gib']} GiB")
    for label, res in payload.get("query", {}).items():
        if "error" in res:
            print(f"query {label}: error {res['error']}")
            continue
        e2e = res["end_to_end"]
        print(f"query {label} end to end: p50 {e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m bench.speed``."""
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))

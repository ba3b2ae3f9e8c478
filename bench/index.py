"""Index benchmark: ``python -m bench.index --n 1000000 --dim 512 --json OUT`` (one process per index type)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from bench._index_run import RunSpec
from bench.report import machine_info

DEFAULT_KINDS_SMALL = ["flat", "ivf-flat", "ivf-pq", "hnsw"]
DEFAULT_KINDS_LARGE = ["ivf-pq"]
_COLUMNS = ["kind", "factory", "build_seconds", "peak_rss_gib", "batched_qps", "single_p50_ms", "single_p99_ms",
            "recall_at_10", "overhead_ratio"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.index", description=__doc__)
    p.add_argument("--n", type=int, default=1_000_000, help="corpus size")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--kinds", nargs="*", help="flat ivf-flat ivf-pq hnsw auto, or faiss factory strings")
    p.add_argument("--queries", type=int, default=1000, help="evaluation queries (batched and recall)")
    p.add_argument("--target-recall", type=float, default=0.95)
    p.add_argument("--memory-gb", type=float, default=6.0, help="memory budget the index type is chosen for")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write results here (rewritten after every index type)")
    return p


def _print_row(row: dict) -> None:
    print("  ".join(f"{c}={row.get(c)}" for c in _COLUMNS), flush=True)


def default_kinds(n: int) -> list[str]:
    """The index types benchmarked by default at corpus size ``n``."""
    return DEFAULT_KINDS_SMALL if n <= 4_000_000 else DEFAULT_KINDS_LARGE


def run_kinds(base: RunSpec, kinds: Sequence[str], json_path: Path | None = None) -> dict:
    """Run each index type of ``kinds`` at ``base``'s size in a child process; rows of failed types carry ``error``."""
    report: dict = {"n": base.n, "dim": base.dim, "seed": base.seed, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": machine_info(),
                    "data": "bench._synthetic_vectors.ClusteredSpec defaults", "results": []}
    for kind in kinds:
        spec = replace(base, kind=kind)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bench._index_run", json.dumps(asdict(spec))],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            row = {"kind": kind, "error": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
        else:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["wall_seconds"] = round(time.perf_counter() - t0, 1)
        report["results"].append(row)
        _print_row(row)
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run every requested index type in a child process and report the figures."""
    args = _parser().parse_args(argv)
    base = RunSpec(kind="", n=args.n, dim=args.dim, queries=args.queries, target_recall=args.target_recall,
                   memory_gb=args.memory_gb, seed=args.seed)
    report = run_kinds(base, args.kinds or default_kinds(args.n), args.json)
    return 1 if any("error" in row for row in report["results"]) else 0


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))

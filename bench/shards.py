"""Sharded search benchmark: ``python -m bench.shards --n 1000000 --shards 4 --json OUT``.

Seeded clustered vectors (``bench._synthetic_vectors``) go to Parquet shards; one index and N index shards of the same
type are built from them autofaiss-style (trained once, shards added in parallel: Ray tasks with --ray); then, on one
thread each: per-shard and one-index single-query p50/p99 and batched QPS, recall@10 of both against exact search,
and (--ray) the coordinator over shard-server actors on a loopback-only local Ray instance: end-to-end p50/p99, the
ms it adds over the slowest shard, batched QPS and recall@10. On a shared 2-core machine the absolute figures are
noisy; the ratios of one run are the trustworthy kind.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench._main import run_main
from bench._synthetic_vectors import ClusteredSpec, ClusteredVectors
from bench.report import machine_info, write_json
from engine.query import Coordinator, ray_mapper, ray_session, start_shard_servers, stop_shard_servers
from index import IndexConfig, LocalShards, ParquetShardWriter, TopK, build_shards, neighbour_recall, thread_mapper


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.shards", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="corpus size")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--factory", default=None, help="FAISS factory string (default: chosen for --n)")
    p.add_argument("--queries", type=int, default=200, help="queries timed one by one, batched, and for recall")
    p.add_argument("--replicas", type=int, default=1, help="shard-server actors per shard (--ray)")
    p.add_argument("--ray", action=argparse.BooleanOptionalAction, default=True,
                   help="also build on Ray tasks and search through shard-server actors")
    p.add_argument("--address", default=None, help="a Ray cluster to use (default: a local loopback-only instance)")
    p.add_argument("--workdir", type=Path, default=None, help="where Parquet and index shards go (default: a temp dir, removed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write results here")
    return p


def _latency(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> dict[str, float]:
    """One query at a time: p50/p99 ms; then all at once: queries per second."""
    search(queries[:1])  # warm-up
    times = []
    for q in queries:
        start = time.perf_counter()
        search(q[None, :])
        times.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    search(queries)
    batched = len(queries) / (time.perf_counter() - start)
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p99_ms": round(float(np.percentile(times, 99)), 3),
            "batched_qps": round(batched, 1)}


def _data(args: argparse.Namespace, folder: Path) -> tuple[list[Path], np.ndarray, np.ndarray, dict]:
    """Parquet shards of the corpus, the queries and their exact top 10."""
    gen = ClusteredVectors(ClusteredSpec(dim=args.dim, seed=args.seed))
    queries = gen.queries(args.queries)
    top = TopK(len(queries), 10)
    start = time.perf_counter()
    rows = max(1, -(-args.n // (args.shards * 4)))
    with ParquetShardWriter(folder, args.dim, rows_per_file=rows, meta={"data": "bench synthetic"}) as writer:
        for ids, x in gen.corpus_chunks(args.n):
            writer.write(ids, x)
            top.add_chunk(queries, x, ids)
    size = sum(p.stat().st_size for p in writer.files)
    return writer.files, queries, top.I, {"parquet_files": len(writer.files), "parquet_bytes": size,
                                           "parquet_bytes_per_vector": round(size / args.n, 1),
                                           "write_and_truth_seconds": round(time.perf_counter() - start, 1)}


def _build(files: list[Path], folder: Path, shards: int, config: IndexConfig, mapper: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    manifest = build_shards(files, folder, shards, config, mapper=mapper)
    return manifest, round(time.perf_counter() - start, 1)


def _describe(manifest: Any, seconds: float) -> dict[str, Any]:
    index_bytes = sum(s.file_size for s in manifest.shards)
    return {"factory": manifest.factory, "params": manifest.params, "tuned_recall": manifest.recall,
            "build_seconds": seconds, "trained_on": manifest.trained_on,
            "add_seconds": [s.add_seconds for s in manifest.shards], "vectors": [s.ntotal for s in manifest.shards],
            "index_bytes": index_bytes, "index_bytes_per_vector": round(index_bytes / max(1, manifest.ntotal), 1)}


def _through_ray(args: argparse.Namespace, folder: Path, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    servers = start_shard_servers(folder, replicas=args.replicas)
    try:
        coordinator = Coordinator(servers, timeout_s=30)
        coordinator.search(queries[:1], 10)
        total, added, shard = [], [], []
        for q in queries:
            out = coordinator.search(q[None, :], 10)
            total.append(out.total_ms)
            added.append(out.coordinator_ms)
            shard.append(max(out.shard_ms.values()))
        start = time.perf_counter()
        out = coordinator.search(queries, 10)
        qps = len(queries) / (time.perf_counter() - start)
        pct = lambda xs, p: round(float(np.percentile(xs, p)), 3)  # noqa: E731
        return {"replicas": args.replicas, "p50_ms": pct(total, 50), "p99_ms": pct(total, 99),
                "slowest_shard_p50_ms": pct(shard, 50), "coordinator_added_p50_ms": pct(added, 50),
                "coordinator_added_p99_ms": pct(added, 99), "batched_qps": round(qps, 1),
                "recall_at_10": round(neighbour_recall(out.ids, truth, 10), 4), "partial": out.partial}
    finally:
        stop_shard_servers(servers)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the figures and write them as JSON."""
    import faiss

    args = _parser().parse_args(argv)
    faiss.omp_set_num_threads(1)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="xmodal-shards-"))
    report: dict[str, Any] = {"n": args.n, "dim": args.dim, "shards": args.shards, "queries": args.queries,
                              "machine": machine_info(), "data": "bench._synthetic_vectors.ClusteredSpec, dim as given",
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    config = IndexConfig(factory=args.factory, seed=args.seed)
    try:
        files, queries, truth, report["data_step"] = _data(args, work / "parquet")
        print(f"data: {report['data_step']}", flush=True)
        one, seconds = _build(files, work / "one", 1, config, thread_mapper(1))
        report["one_index"] = _describe(one, seconds)
        with ray_session(args.address) if args.ray else _nothing():
            mapper = ray_mapper() if args.ray else thread_mapper(2)
            sharded, seconds = _build(files, work / "sharded", args.shards, config, mapper)
            report["sharded"] = {**_describe(sharded, seconds), "added_by": "ray tasks" if args.ray else "2 threads"}
            local_one = LocalShards.open(work / "one")
            report["one_index"].update(_latency(lambda q: local_one.search(q, 10), queries),
                                       recall_at_10=round(neighbour_recall(local_one.search(queries, 10)[1], truth), 4))
            del local_one
            local = LocalShards.open(work / "sharded")
            report["per_shard"] = [_latency(lambda q, i=i: i.search(q, 10), queries) for i in local.indexes]
            report["sharded"]["in_process_recall_at_10"] = round(neighbour_recall(local.search(queries, 10)[1], truth), 4)
            del local
            if args.ray:
                report["ray"] = _through_ray(args, work / "sharded", queries, truth)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    _print(report)
    write_json(args.json, report)
    return report


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _print(report: dict[str, Any]) -> None:
    one, sh = report["one_index"], report["sharded"]
    print(f"one index  {one['factory']} {one['params']}: build {one['build_seconds']} s, "
          f"{one['index_bytes_per_vector']} B/vector, p50 {one['p50_ms']} ms p99 {one['p99_ms']} ms, "
          f"{one['batched_qps']} q/s batched, recall@10 {one['recall_at_10']}")
    print(f"{report['shards']} shards {sh['factory']} {sh['params']}: build {sh['build_seconds']} s ({sh['added_by']}), "
          f"recall@10 {sh['in_process_recall_at_10']}")
    for i, s in enumerate(report["per_shard"]):
        print(f"  shard {i}: {sh['vectors'][i]} vectors, p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms, "
              f"{s['batched_qps']} q/s batched (1 thread)")
    if "ray" in report:
        r = report["ray"]
        print(f"ray coordinator ({r['replicas']} replica/shard): p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms, slowest shard "
              f"p50 {r['slowest_shard_p50_ms']} ms, added p50 {r['coordinator_added_p50_ms']} ms p99 "
              f"{r['coordinator_added_p99_ms']} ms, {r['batched_qps']} q/s batched, recall@10 {r['recall_at_10']}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))

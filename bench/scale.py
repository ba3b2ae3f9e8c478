"""``python -m bench.scale``: ingest images/s with the local runner and with the Ray runner on a local cluster of 1
and of 2 worker nodes, same folder, same model, same batch size, in one run; and whether the stores agree.

The corpus is coco-mini's real JPEGs copied to ``--n`` files, each with its own sha256 (``bench.ingest``'s copies).
Local: one decode worker process, encoding in this process on one torch thread. Ray: a loopback-only local cluster
(head with no CPUs; worker nodes of ``--cpus`` CPUs in all), one encoder actor on one thread, decoding as Ray tasks on
the other CPUs. Each run ingests into a fresh store and is timed whole (the runner's start included). Each Ray
cluster ingests twice: cold (its first job: every worker imports torch, the actor loads the model) and warm (a
second ingest on the same cluster: decode workers reused, a new encoder actor), and then a third time in bulk mode
(``--bulk``: vectors written as Parquet files the catalog names, ``ingest.bulk``), as the local runner does once
after its normal run. On a 2-core machine the Ray figures
measure Ray's overhead, not a speed-up: the ratios against local are the figures to read. Stores are compared item
by item: the largest difference between a vector and the local store's.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.ingest import make_corpus
from bench.report import machine_info, write_json
from engine.api import Engine
from engine.models import load_encoder
from index import iter_shard, open_store
from ingest import IngestOptions, local_cluster


def vectors_by_uri(store: Path) -> dict[str, np.ndarray]:
    """Every item's vectors (representation order), keyed by uri."""
    with sqlite3.connect(store / "catalog.db") as db:
        rows = db.execute("SELECT i.uri, v.vector FROM items i JOIN representations r ON r.item_id = i.id "
                          "JOIN vectors v ON v.representation_id = r.id ORDER BY i.uri, r.kind, r.offset_seconds")
        found: dict[str, list[np.ndarray]] = {}
        for uri, blob in rows:
            found.setdefault(uri, []).append(np.frombuffer(blob, np.float32))
    return {uri: np.stack(v) for uri, v in found.items()}


def bulk_vectors_by_uri(store: Path) -> dict[str, np.ndarray]:
    """Every item's vectors (representation order), keyed by uri, read from the Parquet files of a bulk store."""
    with sqlite3.connect(store / "catalog.db") as db:
        rows = db.execute("SELECT i.uri, v.representation_id, v.file FROM items i JOIN representations r ON "
                          "r.item_id = i.id JOIN bulk_vectors v ON v.representation_id = r.id "
                          "ORDER BY i.uri, r.kind, r.offset_seconds").fetchall()
    vectors = {int(i): v for path in {f for _, _, f in rows} for ids, vs in iter_shard(path) for i, v in zip(ids, vs)}
    found: dict[str, list[np.ndarray]] = {}
    for uri, rep, _ in rows:
        found.setdefault(uri, []).append(vectors[int(rep)])
    return {uri: np.stack(v) for uri, v in found.items()}


def largest_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """The largest absolute difference between the two stores' vectors; inf when their items differ."""
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return float("inf")
    return max((float(np.abs(a[k] - b[k]).max()) for k in a), default=0.0)


def ingest_once(encoder: Any, folder: Path, store: Path, options: IngestOptions, n: int) -> dict[str, Any]:
    """One whole ingest into a fresh store: seconds, images/s, and when the first file came back."""
    shutil.rmtree(store, ignore_errors=True)
    first: list[float] = []
    engine = Engine(open_store(store), encoder)
    try:
        start = time.perf_counter()
        summary = engine.ingest([folder], options, on_progress=lambda s, total: first or first.append(
            time.perf_counter()), enrich=())
        end = time.perf_counter()
    finally:
        engine.close()
    if summary.failed or summary.added != n:
        raise SystemExit(f"ingest did not take every file: {summary}")
    return {"seconds": round(end - start, 2), "img_per_s": round(n / (end - start), 2),
            "first_file_s": round(first[0] - start, 2) if first else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run local, Ray on 1 node and Ray on 2 nodes; print and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="model preset (its image tower is used)")
    parser.add_argument("--n", type=int, default=96, help="number of JPEG files")
    parser.add_argument("--batch-size", type=int, default=16, help="encoder batch size, every run")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray worker nodes in all (1 node, or split)")
    parser.add_argument("--nodes", default="1,2", help="Ray cluster sizes to run, comma-separated")
    parser.add_argument("--workdir", help="where to build the corpus and stores (default: a temp folder)")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the local run's encoder: one thread, as each Ray encoder actor has
    work = Path(args.workdir or tempfile.mkdtemp(prefix="xmodal-bench-scale-"))
    make_corpus(work / "corpus", args.n)
    encoder = load_encoder(args.preset, device="cpu", modalities=["image"], lazy=True)
    info = machine_info()
    print(f"{args.n} JPEGs, preset {args.preset}, batch {args.batch_size}, on {info['cpu_count']} cores (a busy "
          f"machine: read the ratios)", flush=True)
    options = IngestOptions(batch_size=args.batch_size, workers=1, runner="local")
    rows = [{"runner": "local", "nodes": 0, **ingest_once(encoder, work / "corpus", work / "store-local", options,
                                                          args.n)}]
    print(f"local (1 decode process + encoding here): {rows[0]['img_per_s']} img/s, first file after "
          f"{rows[0]['first_file_s']} s", flush=True)
    reference = vectors_by_uri(work / "store-local")
    bulk = IngestOptions(batch_size=args.batch_size, workers=1, runner="local", bulk=str(work / "parquet-local"))
    rows.append({"runner": "local", "nodes": 0, "run": "bulk",
                 **ingest_once(encoder, work / "corpus", work / "store-local-bulk", bulk, args.n)})
    rows[-1]["max_abs_diff_vs_local"] = largest_difference(bulk_vectors_by_uri(work / "store-local-bulk"), reference)
    rows[-1]["ratio_vs_local"] = round(rows[-1]["img_per_s"] / rows[0]["img_per_s"], 3)
    print(f"local --bulk: {rows[-1]['img_per_s']} img/s ({rows[-1]['ratio_vs_local']}x local), vectors vs local: "
          f"max |diff| {rows[-1]['max_abs_diff_vs_local']:.2e}", flush=True)
    for nodes in (int(n) for n in args.nodes.split(",") if n.strip()):
        started = time.perf_counter()
        with local_cluster(nodes=nodes, cpus_per_node=max(1, args.cpus // nodes)):
            cluster_s = time.perf_counter() - started
            for run in ("cold", "warm", "warm-bulk"):
                store = work / f"store-ray-{nodes}-{run}"
                ray_options = IngestOptions(batch_size=args.batch_size, workers=1, runner="ray",
                                            bulk=str(work / f"parquet-ray-{nodes}") if run == "warm-bulk" else None)
                row = {"runner": "ray", "nodes": nodes, "cpus_per_node": max(1, args.cpus // nodes), "run": run,
                       **ingest_once(encoder, work / "corpus", store, ray_options, args.n),
                       "cluster_start_s": round(cluster_s, 1)}
                read = bulk_vectors_by_uri if ray_options.bulk else vectors_by_uri
                row["max_abs_diff_vs_local"] = largest_difference(read(store), reference)
                row["ratio_vs_local"] = round(row["img_per_s"] / rows[0]["img_per_s"], 3)
                rows.append(row)
                print(f"ray, {nodes} worker node(s) x {row['cpus_per_node']} CPU, {run}: {row['img_per_s']} img/s "
                      f"({row['ratio_vs_local']}x local), first file after {row['first_file_s']} s, cluster start "
                      f"{row['cluster_start_s']} s, vectors vs local: max |diff| {row['max_abs_diff_vs_local']:.2e}",
                      flush=True)
    payload = {"bench": "scale", "preset": args.preset, "n": args.n, "batch_size": args.batch_size,
               "gpu_run": "not run: no device lent to this task", "machine": info, "results": rows}
    write_json(args.json_out, payload)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return payload


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))

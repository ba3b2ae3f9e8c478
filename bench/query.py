"""``python -m bench.query``: warm end-to-end text-query latency over a large index with a real preset.

The store holds ``--n`` seeded, clustered synthetic unit vectors (dimension of the preset) as image items,
written through the catalog API and indexed by the index layer's own choice for that size. Each timed query
is a distinct caption, encoded by the preset's real text tower, searched, fused and hydrated
(``Engine.search``, first stage: the synthetic items have no tokens, and the re-ranker's added cost is
``bench.rerank``'s figure); stage times (encode, ANN search, hydrate+fuse) are measured separately too.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._synthetic_vectors import ClusteredSpec, ClusteredVectors
from bench.report import machine_info, write_json
from engine.api import Engine
from engine.models import load_encoder
from engine.query import Filters, QueryPart, encode_query, query_threads
from index import open_store

WORDS = "a the red blue green small large dog cat car tree beach street person bird boat kitchen pizza".split()


def build_store(root: Path, model: str, dim: int, n: int, chunk: int = 20_000) -> None:
    """Write ``n`` synthetic image items with one vector each for ``model`` (skipped when already built)."""
    store = open_store(root)
    try:
        done = store.catalog.count_vectors(model, "image") if any(
            s.model == model for s in store.catalog.vector_sets()) else 0
        source = ClusteredVectors(ClusteredSpec(dim=dim, seed=0))
        for rows, vectors in source.corpus_chunks(n, chunk):
            start = int(rows[0])
            if start + len(vectors) <= done:
                continue
            with store.catalog.atomic():
                reps = []
                for i in range(start, start + len(vectors)):
                    item = store.catalog.upsert_item(f"/synthetic/{i:08d}.jpg", "image", sha256=f"{i:064x}", size=1, mtime=0.0)
                    reps.append(store.catalog.add_representation(item, "image", "image"))
                store.catalog.write_vectors(model, np.array(reps, dtype=np.int64), vectors)
            print(f"  catalog: {start + len(vectors)} / {n}", flush=True)
        t0 = time.perf_counter()
        store.sync()
        print(f"  index synced in {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        store.close()


def busy_ingest(paths: list[str], workdir: Path) -> subprocess.Popen:
    """A concurrent ``xmodal ingest`` of ``paths`` into a fresh store, repeated until killed (the "busy" case)."""
    store = workdir / "busy-store"
    ingest = " ".join(shlex.quote(p) for p in [sys.executable, "-m", "engine", "ingest", *paths, "--store", str(store),
                                               "--no-progress"])
    loop = f"while true; do rm -rf {shlex.quote(str(store))}; {ingest} >/dev/null 2>&1; done"
    return subprocess.Popen(["bash", "-c", loop], start_new_session=True)


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50, p90, p99 and mean of a list of milliseconds."""
    a = np.array(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "mean_ms": round(float(a.mean()), 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build (or reuse) the store, then time warm queries end to end and per stage."""
    parser = argparse.ArgumentParser(prog="python -m bench.query", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset whose text tower encodes the queries")
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--queries", type=int, default=300, help="timed queries")
    parser.add_argument("--k", type=int, default=10, help="results per query")
    parser.add_argument("--workdir", default="bench/results/tmp/query", help="where the store is built and kept")
    parser.add_argument("--busy-ingest", nargs="+", metavar="PATH",
                        help="while timing, run `xmodal ingest PATH...` into a scratch store over and over")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    encoder = load_encoder(args.preset, device="cpu", modalities=["text"])
    root = Path(args.workdir) / f"{encoder.preset.name}-{args.n}"
    print(f"store {root}: {args.n} vectors of dim {encoder.dim}", flush=True)
    build_store(root, encoder.preset.name, encoder.dim, args.n)
    engine = Engine(open_store(root), encoder)
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 10)))) + f" {i}" for i in range(args.queries + 20)]
    for t in texts[:20]:  # warm: index loaded, caches filled, first-call costs paid
        engine.search(t, indexes=["image"], k=args.k, rerank=False)
    busy = busy_ingest(args.busy_ingest, Path(args.workdir)) if args.busy_ingest else None
    if busy is not None:
        time.sleep(10)  # past the ingest's start-up (imports, model load): into its decode and encode batches
    load_before = os.getloadavg()
    end_to_end, encode_ms, ann_ms, fuse_ms = [], [], [], []
    searcher = engine.searcher
    index = engine.store.index(engine.model, "image")
    for t in texts[20:]:
        t0 = time.perf_counter()
        results = engine.search(t, indexes=["image"], k=args.k, rerank=False)
        end_to_end.append((time.perf_counter() - t0) * 1000)
        assert len(results) == args.k
        t0 = time.perf_counter()
        with query_threads():  # as Engine.search encodes a query
            vector = encode_query(engine.encoder, [QueryPart("text", t)])
        t1 = time.perf_counter()
        index.search(vector, 100)
        t2 = time.perf_counter()
        searcher.search(vector, "text", ["image"], args.k, Filters())
        t3 = time.perf_counter()
        encode_ms.append((t1 - t0) * 1000)
        ann_ms.append((t2 - t1) * 1000)
        fuse_ms.append(max(0.0, (t3 - t2) - (t2 - t1)) * 1000)
    load_after = os.getloadavg()
    if busy is not None:
        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait()
    meta_path = root / "indexes" / f"{engine.model}.image.json"
    index_meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    payload = {"bench": "query", "preset": encoder.preset.name, "n": args.n, "k": args.k, "queries": args.queries,
               "rerank": False, "busy_ingest": args.busy_ingest,
               "load_average_1m": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
               "index": {"factory": index_meta.get("factory"), "params": index_meta.get("params"),
                         "recall_at_10": index_meta.get("recall")},
               "end_to_end": percentiles(end_to_end), "encode": percentiles(encode_ms), "ann_search": percentiles(ann_ms),
               "hydrate_and_fuse": percentiles(fuse_ms), "machine": machine_info()}
    engine.close()
    print(f"index {payload['index']}")
    for stage in ("end_to_end", "encode", "ann_search", "hydrate_and_fuse"):
        s = payload[stage]
        print(f"{stage:<17} p50 {s['p50_ms']:8.3f} ms  p90 {s['p90_ms']:8.3f} ms  p99 {s['p99_ms']:8.3f} ms")
    write_json(args.json_out, payload)
    return payload


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))

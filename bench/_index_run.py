"""One index type of the index benchmark, run in its own process so peak RSS is its own."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from bench._child import peak_rss_gib
from bench._synthetic_vectors import ClusteredSpec, ClusteredVectors
from index import (
    IndexConfig,
    TopK,
    FaissIndex,
    choose_factory,
    neighbour_recall,
    nlist_for,
    train_size,
    tune,
)


@dataclass(frozen=True)
class RunSpec:
    """What one child process measures."""

    kind: str
    n: int
    dim: int
    queries: int = 1000
    tune_queries: int = 256
    single_queries: int = 200
    k: int = 10
    target_recall: float = 0.95
    memory_gb: float = 6.0
    chunk: int = 50_000
    seed: int = 0
    pairs: int = 9
    pair_seconds: float = 1.5


def factory_for(spec: RunSpec) -> str:
    """The factory string benchmarked under ``spec.kind``."""
    budget = IndexConfig(memory_budget_bytes=int(spec.memory_gb * 2**30))
    if spec.kind == "flat":
        return "IDMap,Flat"
    if spec.kind == "ivf-flat":
        return f"IVF{nlist_for(spec.n)},Flat"
    if spec.kind == "hnsw":
        return "HNSW32"
    if spec.kind == "ivf-pq":
        return choose_factory(spec.n, spec.dim, IndexConfig(**{**asdict(budget), "flat_max": 0, "ivf_flat_max": 0}))
    if spec.kind == "auto":
        return choose_factory(spec.n, spec.dim, budget)
    return spec.kind  # a raw faiss factory string




def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _paired(fx: Callable[[], object], fr: Callable[[], object], pairs: int, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Times of xmodal and raw faiss back to back, order alternating (from ``first``): load and warm caches hit both."""
    tx, tr = np.empty(pairs), np.empty(pairs)
    for i in range(first, first + pairs):
        if i % 2:
            tr[i - first], tx[i - first] = _seconds(fr), _seconds(fx)
        else:
            tx[i - first], tr[i - first] = _seconds(fx), _seconds(fr)
    return tx, tr


def run(spec: RunSpec) -> dict:
    """Build, tune and measure one index type over a streamed synthetic corpus."""
    gen = ClusteredVectors(ClusteredSpec(dim=spec.dim, seed=spec.seed))
    factory = factory_for(spec)
    allq = gen.queries(spec.tune_queries + spec.queries)
    tune_q, eval_q = allq[: spec.tune_queries], allq[spec.tune_queries :]
    index = FaissIndex.create(spec.dim, factory)
    t_train = 0.0
    if not index.is_trained:
        size = train_size(spec.n, factory, IndexConfig())
        sample = next(gen.corpus_chunks(size, chunk=size))[1]  # rows are i.i.d.: the first rows are a fair sample
        t0 = time.perf_counter()
        index.train(sample)
        t_train = time.perf_counter() - t0
        del sample
    truth = TopK(len(allq), spec.k)
    t_add = t_gen = t_exact = 0.0
    t0 = time.perf_counter()
    for ids, x in gen.corpus_chunks(spec.n, chunk=spec.chunk):
        t1 = time.perf_counter()
        t_gen += t1 - t0
        index.add(ids, x)
        t2 = time.perf_counter()
        t_add += t2 - t1
        truth.add_chunk(allq, x, ids)
        t0 = time.perf_counter()
        t_exact += t0 - t2
    del x
    t0 = time.perf_counter()
    tuned = tune(index, tune_q, truth.I[: spec.tune_queries], spec.target_recall, spec.k) if index.tunable() else None
    t_tune = time.perf_counter() - t0
    eval_truth = truth.I[spec.tune_queries :]
    _, found = index.search(eval_q, spec.k)
    recall = neighbour_recall(found, eval_truth, spec.k)
    nn_recall = float(np.mean([t[0] in f for f, t in zip(found, eval_truth)]))
    raw = index.index  # the very faiss object FaissIndex searches, same parameters
    t_batch = _seconds(lambda: index.search(eval_q, spec.k))
    raw_batch = _seconds(lambda: raw.search(eval_q, spec.k))
    nb = int(np.clip(len(eval_q) * spec.pair_seconds / t_batch, 50, len(eval_q)))  # overhead pairs of ~pair_seconds
    bq = eval_q[:nb]
    b_x, b_raw = _paired(lambda: index.search(bq, spec.k), lambda: raw.search(bq, spec.k), spec.pairs)
    s_x, s_raw = np.empty(spec.single_queries), np.empty(spec.single_queries)
    for i in range(spec.single_queries):
        q = eval_q[i : i + 1]
        (s_x[i],), (s_raw[i],) = _paired(lambda q=q: index.search(q, spec.k), lambda q=q: raw.search(q, spec.k), 1, i)
    return {
        "kind": spec.kind,
        "factory": factory,
        "n": spec.n,
        "dim": spec.dim,
        "params": index.params.to_dict(),
        "tuning_recall_at_10": None if tuned is None else round(tuned.recall, 4),
        "tuning_target_reached": None if tuned is None else tuned.reached,
        "train_seconds": round(t_train, 2),
        "add_seconds": round(t_add, 2),
        "build_seconds": round(t_train + t_add, 2),
        "tune_seconds": round(t_tune, 2),
        "datagen_seconds": round(t_gen, 2),
        "exact_gt_seconds": round(t_exact, 2),
        "peak_rss_gib": round(peak_rss_gib(), 3),
        "batched_queries": len(eval_q),
        "batched_qps": round(len(eval_q) / t_batch, 1),
        "raw_faiss_batched_qps": round(len(eval_q) / raw_batch, 1),
        "single_p50_ms": round(float(np.percentile(s_x, 50)) * 1e3, 3),
        "single_p99_ms": round(float(np.percentile(s_x, 99)) * 1e3, 3),
        "raw_single_p50_ms": round(float(np.percentile(s_raw, 50)) * 1e3, 3),
        "recall_at_10": round(recall, 4),
        "nn_in_top10": round(nn_recall, 4),
        "overhead_ratio": round(float(np.median(b_x / b_raw)), 4),
        "overhead_pairs": f"{spec.pairs} x {nb} queries",
        "overhead_ratio_single": round(float(np.median(s_x / s_raw)), 4),
    }


if __name__ == "__main__":
    result = run(RunSpec(**json.loads(sys.argv[1])))
    print(json.dumps(result))

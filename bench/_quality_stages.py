"""The stages ``bench.quality`` measures, each turning queries into a score matrix over a direction's corpus.

exact: brute-force cosine (numpy) over the encoded vectors; ann: the project's FAISS ``FaissIndex`` built and
tuned by ``index.build_index``; fused / re-ranked: ``Engine.search`` over a store the corpus was ingested into.
Each also yields milliseconds per query: one query's top ``depth``, timed alone, after one warm-up query.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.protocol import mean_average_precision, recall_at_k, scores_from_rankings
from engine.api import Engine
from engine import RerankerUnavailable
from index import IndexConfig, FaissIndex, build_index, exact_search

KS = (1, 5, 10)
CURVE_KS = tuple(range(1, 11))


def timed(run_one: Callable[[int], Any], n: int) -> tuple[list[Any], list[float]]:
    """``run_one(i)`` for every query i after one untimed warm-up call; results and milliseconds per call."""
    if n:
        run_one(0)
    out, ms = [], []
    for i in range(n):
        start = time.perf_counter()
        out.append(run_one(i))
        ms.append((time.perf_counter() - start) * 1000)
    return out, ms


def figures(sims: np.ndarray, relevant: np.ndarray, protocol: str, ms: Sequence[float]) -> dict[str, Any]:
    """R@1/5/10 (and mAP under the class protocol), the recall@k curve for k = 1..10, and latency."""
    curve = recall_at_k(sims, relevant, CURVE_KS)
    out: dict[str, Any] = {f"R@{k}": round(curve[k], 4) for k in KS}
    if protocol == "class":
        out["mAP"] = round(mean_average_precision(sims, relevant), 4)
    out["curve"] = {str(k): round(v, 4) for k, v in curve.items()}
    a = np.asarray(ms, dtype=np.float64)
    out["ms_per_query"] = round(float(a.mean()), 4) if len(a) else None
    out["ms_p50"] = round(float(np.percentile(a, 50)), 4) if len(a) else None
    out["ms_p90"] = round(float(np.percentile(a, 90)), 4) if len(a) else None
    return out


def exact(queries: np.ndarray, corpus: np.ndarray, depth: int) -> tuple[np.ndarray, list[float]]:
    """Cosine similarities of unit vectors (the score matrix) and the time of one query's exact top ``depth``."""
    _, ms = timed(lambda i: exact_search(queries[i : i + 1], corpus, depth), len(queries))
    return queries @ corpus.T, ms


def build_ann(vectors: np.ndarray, factory: str | None) -> FaissIndex:
    """The project's index over ``vectors`` (ids = row numbers): its own type choice unless ``factory`` forces one, tuned."""
    return build_index(np.arange(len(vectors), dtype=np.int64), vectors, IndexConfig(factory=factory))


def describe(index: FaissIndex) -> dict[str, Any]:
    """Factory, tuned search parameters and the recall@10 the tuning reached."""
    return {"factory": index.factory, "params": index.params.to_dict(), "size": index.ntotal,
            "tuned_recall_at_10": None if index.recall is None else round(float(index.recall), 4)}


def ann(queries: np.ndarray, parts: Sequence[tuple[FaissIndex, np.ndarray]], n_corpus: int,
        depth: int) -> tuple[np.ndarray, list[float]]:
    """Search each target's index (``columns`` maps its ids to corpus columns), merge by raw cosine, keep ``depth``."""

    def one(i: int) -> list[int]:
        scores, columns = [], []
        for index, to_column in parts:
            d, ids = index.search(queries[i : i + 1], min(depth, index.ntotal))
            found = ids[0] >= 0
            scores.append(d[0][found])
            columns.append(to_column[ids[0][found]])
        s, c = np.concatenate(scores), np.concatenate(columns)
        return c[np.argsort(-s, kind="stable")][:depth].tolist()

    rankings, ms = timed(one, len(queries))
    return scores_from_rankings(rankings, n_corpus), ms


def engine_search(engine: Engine, queries: Sequence[Any], targets: Sequence[str], columns: dict[str, int],
                  n_corpus: int, depth: int, rerank: bool) -> tuple[np.ndarray, list[float]]:
    """``Engine.search`` end to end (query encoding included); results outside the corpus are dropped."""

    def one(i: int) -> list[int]:
        results = engine.search(queries[i], k=depth, depth=max(depth, 100), rerank=rerank, indexes=list(targets))
        return [columns[r.uri] for r in results if r.uri in columns]

    rankings, ms = timed(one, len(queries))
    return scores_from_rankings(rankings, n_corpus), ms


def reranked(engine: Engine, queries: Sequence[Any], targets: Sequence[str], columns: dict[str, int],
             n_corpus: int, depth: int) -> tuple[np.ndarray, list[float]] | str:
    """The re-ranked stage, or why it could not run (the preset has no re-ranker, or the store no tokens)."""
    try:
        return engine_search(engine, queries, targets, columns, n_corpus, depth, rerank=True)
    except RerankerUnavailable as exc:
        return f"re-ranker unavailable for preset {engine.encoder.preset.name}: {exc}"

"""Exact brute-force inner-product search and recall metrics: the baseline next to every ANN path."""

from __future__ import annotations

import numpy as np


class TopK:
    """Running top-k (largest inner product) over corpus chunks, for exact search on streamed data."""

    def __init__(self, n_queries: int, k: int) -> None:
        self.k = k
        self.D = np.full((n_queries, k), -np.inf, dtype=np.float32)
        self.I = np.full((n_queries, k), -1, dtype=np.int64)

    def update(self, scores: np.ndarray, ids: np.ndarray) -> None:
        """Merge a (n_queries, chunk) score block whose columns carry ``ids``."""
        kk = min(self.k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_d = np.concatenate([self.D, np.take_along_axis(scores, part, axis=1)], axis=1)
        cand_i = np.concatenate([self.I, ids[part]], axis=1)
        order = np.argsort(-cand_d, axis=1, kind="stable")[:, : self.k]
        self.D = np.take_along_axis(cand_d, order, axis=1)
        self.I = np.take_along_axis(cand_i, order, axis=1)

    def add_chunk(self, queries: np.ndarray, corpus: np.ndarray, ids: np.ndarray, block: int = 16384) -> None:
        """Score ``queries`` against one corpus chunk (in column blocks, to bound memory) and merge."""
        for start in range(0, len(corpus), block):
            self.update(queries @ corpus[start : start + block].T, ids[start : start + block])


def exact_search(
    queries: np.ndarray, corpus: np.ndarray, k: int, ids: np.ndarray | None = None, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product; returns (D, I) like FAISS, I padded with -1 when k > len(corpus)."""
    ids = np.arange(len(corpus), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    top = TopK(len(queries), k)
    for start in range(0, len(corpus), chunk):
        top.add_chunk(queries, corpus[start : start + chunk], ids[start : start + chunk])
    return top.D, top.I


def neighbour_recall(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """How many of the true (exact) top-k neighbours an ANN search found: mean |found top-k ∩ true top-k| / k over
    queries (the strict "k-recall@k"; not retrieval recall, which asks whether a relevant item is in the top k)."""
    hits = 0
    total = 0
    for f, t in zip(found[:, :k], truth[:, :k]):
        t = t[t >= 0]
        hits += len(np.intersect1d(f[f >= 0], t))
        total += len(t)
    return hits / total if total else 1.0


def tie_tolerant_recall(
    found: np.ndarray, truth_scores: np.ndarray, exact_scores_of_found: np.ndarray, k: int = 10, eps: float = 1e-5
) -> float:
    """Share of found ids whose exact score reaches the true k-th score (ties count as hits)."""
    kth = truth_scores[:, k - 1 : k]
    ok = (exact_scores_of_found[:, :k] >= kth - eps) & (found[:, :k] >= 0)
    return float(ok.mean())

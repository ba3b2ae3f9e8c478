"""Plain retrieval metrics over a similarity matrix and a boolean relevance matrix (queries x corpus)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranks(sims: np.ndarray) -> np.ndarray:
    """Corpus indices of every query, best first (stable, so ties keep corpus order)."""
    return np.argsort(-sims, axis=1, kind="stable")


def recall_at_k(sims: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries with at least one relevant item in their top k (the COCO protocol), per k."""
    hits = np.take_along_axis(relevant, ranks(sims), axis=1)
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def mean_average_precision(sims: np.ndarray, relevant: np.ndarray) -> float:
    """Mean over queries of average precision over the whole ranked corpus."""
    hits = np.take_along_axis(relevant, ranks(sims), axis=1).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    return float(np.mean((precision * hits).sum(axis=1) / np.maximum(hits.sum(axis=1), 1)))

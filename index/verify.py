"""Compare the vectors an index file holds with the catalog's, id by id (what ``check`` does beyond ids and counts)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from index.backend import VectorBackend

EXACT_TOL = 1e-6  # reconstruction vs the codec's own round trip of the catalog vector: bit-for-bit in practice
APPROX_MIN_COSINE = 0.5  # codecs without a standalone round trip: only a gross difference is caught


@dataclass(frozen=True)
class VectorComparison:
    """How many stored vectors were compared, which ids differ, and whether the comparison was exact."""

    compared: int
    mismatched: np.ndarray
    exact: bool


def compare_vectors(index: VectorBackend, chunks: Iterator[tuple[np.ndarray, np.ndarray]]) -> VectorComparison:
    """Compare every stored vector with the catalog's (streamed as (ids, vectors)); ids absent from the index skip."""
    reader = index.reader()
    bad: list[np.ndarray] = []
    compared = 0
    for ids, x in chunks:
        present, stored = reader.stored(ids)
        if not present.any():
            continue
        ids, x = ids[present], x[present]
        expected = reader.expected(x)
        if reader.exact:
            wrong = np.abs(stored - expected).max(axis=1) > EXACT_TOL
        else:
            norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(expected, axis=1)
            wrong = (stored * expected).sum(axis=1) < APPROX_MIN_COSINE * np.maximum(norms, 1e-12)
        wrong |= ~np.isfinite(stored).all(axis=1)
        bad.append(ids[wrong])
        compared += len(ids)
    mismatched = np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)
    return VectorComparison(compared, mismatched, reader.exact)

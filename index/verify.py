"""Compare the vectors an index file holds with the catalog's, id by id (what ``check`` does beyond ids and counts)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numpy as np

from index.vector_index import VectorIndex, _chain

EXACT_TOL = 1e-6  # reconstruction vs the codec's own round trip of the catalog vector: bit-for-bit in practice
APPROX_MIN_COSINE = 0.5  # codecs without a standalone round trip: only a gross difference is caught


@dataclass(frozen=True)
class VectorComparison:
    """How many stored vectors were compared, which ids differ, and whether the comparison was exact."""

    compared: int
    mismatched: np.ndarray
    exact: bool


class _Reader:
    """Reconstructs stored vectors by id, and what the index would store for a given catalog vector."""

    def __init__(self, index: VectorIndex) -> None:
        top = faiss.downcast_index(index.index)
        if isinstance(top, (faiss.IndexIDMap, faiss.IndexIDMap2)):  # keys are positions in the inner index
            ids = faiss.vector_to_array(top.id_map).astype(np.int64)
            keys = np.arange(len(ids), dtype=np.int64)
            self.layer = faiss.downcast_index(top.index)
        else:  # an IVF index keyed by the ids themselves
            ids = index.ids()
            keys = ids
            self.layer = top
        order = np.argsort(ids, kind="stable")
        self.positions = (ids[order], keys[order])
        leaf = _chain(self.layer)[-1]
        if isinstance(leaf, faiss.IndexIVF) and not isinstance(self.layer, faiss.IndexRefine):
            leaf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct by id (this copy only)
        self.exact = True

    def keys(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of ids present in the index, the layer's keys for them)."""
        sorted_ids, order = self.positions
        where = np.clip(np.searchsorted(sorted_ids, ids), 0, max(len(sorted_ids) - 1, 0))
        present = (sorted_ids[where] == ids) if len(sorted_ids) else np.zeros(len(ids), dtype=bool)
        return present, order[where[present]]

    def stored(self, keys: np.ndarray) -> np.ndarray:
        """The vectors stored under these keys."""
        return self.layer.reconstruct_batch(keys) if len(keys) else np.zeros((0, self.layer.d), dtype=np.float32)

    def expected(self, x: np.ndarray) -> np.ndarray:
        """What the index stores for catalog vectors ``x``: the codec's round trip (``x`` for flat storage)."""
        if not self.exact:
            return x
        try:
            return self.layer.sa_decode(self.layer.sa_encode(x))
        except RuntimeError:  # no standalone codec (e.g. HNSW): flat storage is exact, anything else approximate
            self.exact = isinstance(_chain(self.layer)[-1], faiss.IndexHNSWFlat)
            return x


def compare_vectors(index: VectorIndex, chunks: Iterator[tuple[np.ndarray, np.ndarray]]) -> VectorComparison:
    """Compare every stored vector with the catalog's (streamed as (ids, vectors)); ids absent from the index skip."""
    reader = _Reader(index)
    bad: list[np.ndarray] = []
    compared = 0
    for ids, x in chunks:
        present, keys = reader.keys(ids)
        if not present.any():
            continue
        ids, x = ids[present], x[present]
        stored = reader.stored(keys)
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

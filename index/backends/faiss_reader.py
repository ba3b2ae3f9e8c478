"""Read vectors back out of a FAISS index by id, and what its codec stores for a given vector (for ``check``)."""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np


def chain(index: faiss.Index) -> list[faiss.Index]:
    """The index and its wrapped inner indexes, outermost first (IDMap, PreTransform, Refine peeled)."""
    idx = faiss.downcast_index(index)
    layers = [idx]
    while True:
        if isinstance(idx, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
            idx = faiss.downcast_index(idx.index)
        elif isinstance(idx, faiss.IndexRefine):
            idx = faiss.downcast_index(idx.base_index)
        else:
            return layers
        layers.append(idx)


class FaissReader:
    """Reconstructs stored vectors by id, and what the index would store for a given catalog vector."""

    def __init__(self, index: faiss.Index, all_ids: Callable[[], np.ndarray]) -> None:
        top = faiss.downcast_index(index)
        if isinstance(top, (faiss.IndexIDMap, faiss.IndexIDMap2)):  # keys are positions in the inner index
            ids = faiss.vector_to_array(top.id_map).astype(np.int64)
            keys = np.arange(len(ids), dtype=np.int64)
            self.layer = faiss.downcast_index(top.index)
        else:  # an IVF index keyed by the ids themselves
            ids = all_ids()
            keys = ids
            self.layer = top
        order = np.argsort(ids, kind="stable")
        self.positions = (ids[order], keys[order])
        leaf = chain(self.layer)[-1]
        if isinstance(leaf, faiss.IndexIVF) and not isinstance(self.layer, faiss.IndexRefine):
            leaf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct by id
        self.exact = True

    def _keys(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of ids present in the index, the layer's keys for them)."""
        sorted_ids, order = self.positions
        where = np.clip(np.searchsorted(sorted_ids, ids), 0, max(len(sorted_ids) - 1, 0))
        present = (sorted_ids[where] == ids) if len(sorted_ids) else np.zeros(len(ids), dtype=bool)
        return present, order[where[present]]

    def stored(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of the ids present, the vectors stored under the present ones)."""
        present, keys = self._keys(ids)
        if not len(keys):
            return present, np.zeros((0, self.layer.d), dtype=np.float32)
        return present, self.layer.reconstruct_batch(keys)

    def expected(self, x: np.ndarray) -> np.ndarray:
        """What the index stores for catalog vectors ``x``: the codec's round trip (``x`` for flat storage)."""
        if not self.exact:
            return x
        try:
            return self.layer.sa_decode(self.layer.sa_encode(x))
        except RuntimeError:  # no standalone codec (e.g. HNSW): flat storage is exact, anything else approximate
            self.exact = isinstance(chain(self.layer)[-1], faiss.IndexHNSWFlat)
            return x

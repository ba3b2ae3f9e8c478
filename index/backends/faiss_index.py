"""The FAISS backend: one FAISS index per (model, modality), int64 ids (representation ids), inner product."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Self

import faiss
import numpy as np

from index.backend import VectorBackend, VectorReader
from index.backends.faiss_gpu import GpuReplica, search_on_gpu
from index.backends.faiss_reader import FaissReader, chain
from index.backends.faiss_types import choose_factory, train_size
from index.config import IndexConfig, SearchParams
from index.errors import IndexCorrupt, InvalidIndexConfig

log = logging.getLogger(__name__)


_SMALL_BATCH = 4


def _ivf_ids(ivf: faiss.IndexIVF) -> np.ndarray:
    """Every id stored in an IVF index's inverted lists."""
    inv = ivf.invlists
    parts = []
    for lst in range(ivf.nlist):
        size = inv.list_size(lst)
        if size:
            ptr = inv.get_ids(lst)
            parts.append(faiss.rev_swig_ptr(ptr, size).copy())
            inv.release_ids(lst, ptr)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def make_faiss_index(dim: int, factory: str) -> faiss.Index:
    """Build an (untrained) inner-product index from a factory string, wrapped so it takes int64 ids."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InvalidIndexConfig(f"faiss cannot build {factory!r} for dim {dim}: {str(exc).splitlines()[-1]}") from exc
    layers = chain(index)
    takes_ids = isinstance(layers[0], (faiss.IndexIDMap, faiss.IndexIVF)) or (
        isinstance(layers[0], faiss.IndexPreTransform) and isinstance(layers[-1], faiss.IndexIVF) and len(layers) == 2
    )
    return index if takes_ids else faiss.IndexIDMap2(index)


class FaissIndex(VectorBackend):
    """A FAISS index with validated inputs, tuned search parameters and an optional GPU search replica."""

    name = "faiss"

    def __init__(self, index: faiss.Index, factory: str, params: SearchParams | None = None,
                 recall: float | None = None, device: str = "cpu") -> None:
        self.index = index
        self.factory = factory
        self.recall = recall
        self.params = SearchParams()
        self.set_params(params or SearchParams())
        self._gpu_no = search_on_gpu(device)
        self._replica: GpuReplica | None = GpuReplica(self._gpu_no) if self._gpu_no is not None else None
        self._gpu_index: faiss.Index | None = None

    @classmethod
    def choose_factory(cls, n: int, dim: int, config: IndexConfig) -> str:
        """Flat, IVF-Flat, or IVF-PQ (+ scalar refine) by size and memory (``index.backends.faiss_types``)."""
        return choose_factory(n, dim, config)

    @classmethod
    def train_size(cls, n: int, factory: str, config: IndexConfig) -> int:
        """Enough vectors for k-means on the IVF lists, capped by ``config.max_train``."""
        return train_size(n, factory, config)

    @classmethod
    def create(cls, dim: int, factory: str, device: str = "cpu") -> Self:
        """A new empty (possibly untrained) index of ``factory`` type."""
        return cls(make_faiss_index(dim, factory), factory, device=device)

    @classmethod
    def load(cls, path: Path, factory: str, params: SearchParams, recall: float | None, device: str = "cpu") -> Self:
        """Read a FAISS index file."""
        try:
            raw = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexCorrupt(f"index file {path} is unreadable: {str(exc).splitlines()[-1]}") from exc
        return cls(raw, factory, params, recall, device=device)

    def save(self, path: Path) -> None:
        """Write the CPU index with ``faiss.write_index``."""
        faiss.write_index(self.index, str(path))

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        """Number of vectors stored."""
        return int(self.index.ntotal)

    @property
    def is_trained(self) -> bool:
        """Whether the index can take vectors."""
        return bool(self.index.is_trained)

    @property
    def supports_remove(self) -> bool:
        """False for HNSW and refine indexes, which FAISS cannot remove from (the store rebuilds instead)."""
        return not any(isinstance(i, (faiss.IndexHNSW, faiss.IndexRefine)) for i in chain(self.index))

    @property
    def on_gpu(self) -> bool:
        """Whether searches go to a GPU replica."""
        return self._gpu_index is not None

    def _train(self, vectors: np.ndarray) -> None:
        self.index.train(vectors)

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(vectors, ids)
        self._gpu_index = None

    def _remove(self, ids: np.ndarray) -> int:
        self._gpu_index = None
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def ids(self) -> np.ndarray:
        """Every id stored, unsorted."""
        top = self.index if isinstance(self.index, (faiss.IndexIDMap, faiss.IndexIDMap2)) else faiss.downcast_index(self.index)
        if isinstance(top, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            return faiss.vector_to_array(top.id_map).astype(np.int64)
        ivf = chain(self.index)[-1]
        if isinstance(ivf, faiss.IndexIVF):
            return _ivf_ids(ivf)
        return np.arange(self.ntotal, dtype=np.int64)

    def reader(self) -> VectorReader:
        """Reconstructs stored vectors by id (an IVF index gets a hashtable direct map for it)."""
        return FaissReader(self.index, self.ids)
    def set_params(self, params: SearchParams) -> None:
        """Apply search parameters to every layer they concern."""
        for idx in chain(self.index):
            if params.nprobe is not None and isinstance(idx, faiss.IndexIVF):
                idx.nprobe = int(min(params.nprobe, idx.nlist))
            if params.efSearch is not None and isinstance(idx, faiss.IndexHNSW):
                idx.hnsw.efSearch = int(params.efSearch)
            if params.k_factor is not None and isinstance(idx, faiss.IndexRefine):
                idx.k_factor = float(params.k_factor)
        self.params = params
        self._gpu_index = None

    def tunable(self) -> dict[str, int]:
        """Which knobs this index has, with their upper bound (e.g. ``{"nprobe": nlist}``)."""
        knobs: dict[str, int] = {}
        for idx in chain(self.index):
            if isinstance(idx, faiss.IndexIVF):
                knobs["nprobe"] = int(idx.nlist)
            elif isinstance(idx, faiss.IndexHNSW):
                knobs["efSearch"] = 4096
            elif isinstance(idx, faiss.IndexRefine):
                knobs["k_factor"] = 64
        return knobs

    def _search_index(self) -> faiss.Index:
        if self._replica is None:
            return self.index
        if self._gpu_index is None:
            self._gpu_index = self._replica.copy(self.index)
            if self._gpu_index is None:
                self._replica = None
                return self.index
        return self._gpu_index

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        threads = faiss.omp_get_max_threads()
        if len(queries) > _SMALL_BATCH or threads == 1:
            return self._search_index().search(queries, k)
        # A handful of queries gains nothing from OpenMP; its thread wake-ups cost 1-5 ms on a busy machine.
        faiss.omp_set_num_threads(1)
        try:
            return self._search_index().search(queries, k)
        finally:
            faiss.omp_set_num_threads(threads)

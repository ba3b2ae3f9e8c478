"""The exact backend: vectors kept flat in NumPy, searched by brute force (no FAISS; recall 1 by construction).

For small stores and as the reference next to every ANN backend; its index file is an ``.npz`` of ids and vectors.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Self

import numpy as np

from index.backend import VectorBackend, VectorReader
from index.config import IndexConfig, SearchParams
from index.errors import IndexCorrupt, InvalidIndexConfig
from index.exact import exact_search

FLAT = "Flat"
_PAD_SCORE = -np.finfo(np.float32).max  # what FAISS reports for a missing neighbour of an inner-product search


class _FlatReader:
    """Stored vectors by id; flat storage is its own round trip."""

    exact = True

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        self._ids, self._vectors = ids[order], vectors[order]

    def stored(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of the ids present, the vectors stored under the present ones)."""
        where = np.clip(np.searchsorted(self._ids, ids), 0, max(len(self._ids) - 1, 0))
        present = (self._ids[where] == ids) if len(self._ids) else np.zeros(len(ids), dtype=bool)
        return present, self._vectors[where[present]]

    def expected(self, x: np.ndarray) -> np.ndarray:
        """Flat storage keeps vectors as given."""
        return x


class ExactIndex(VectorBackend):
    """Ids and float32 vectors in memory; exact top-k by inner product; every id can be removed."""

    name = "exact"

    def __init__(self, dim: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None,
                 params: SearchParams | None = None, recall: float | None = None) -> None:
        self._dim = int(dim)
        self._ids = np.zeros(0, dtype=np.int64) if ids is None else ids
        self._vectors = np.zeros((0, self._dim), dtype=np.float32) if vectors is None else vectors
        self.factory = FLAT
        self.params = params or SearchParams()
        self.recall = recall

    @classmethod
    def choose_factory(cls, n: int, dim: int, config: IndexConfig) -> str:
        """Always flat storage (``config.factory`` when set, which ``create`` then checks)."""
        return config.factory or FLAT

    @classmethod
    def train_size(cls, n: int, factory: str, config: IndexConfig) -> int:
        """Nothing to train."""
        return 0

    @classmethod
    def create(cls, dim: int, factory: str, device: str = "cpu") -> Self:
        """An empty index; the device is ignored (NumPy searches on the CPU)."""
        if factory != FLAT:
            raise InvalidIndexConfig(f"the exact backend stores vectors flat: index type {FLAT!r}, not {factory!r}")
        return cls(dim)

    @classmethod
    def load(cls, path: Path, factory: str, params: SearchParams, recall: float | None, device: str = "cpu") -> Self:
        """Read the ``.npz`` of ids and vectors written by ``save``."""
        try:
            with np.load(path, allow_pickle=False) as data:
                ids, vectors = data["ids"], data["vectors"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise IndexCorrupt(f"index file {path} is unreadable: {exc}") from exc
        if (factory != FLAT or ids.dtype != np.int64 or vectors.dtype != np.float32 or ids.ndim != 1
                or vectors.ndim != 2 or len(ids) != len(vectors)):
            raise IndexCorrupt(f"index file {path} is not an exact index ({factory!r}: ids {ids.dtype}{ids.shape}, "
                               f"vectors {vectors.dtype}{vectors.shape})")
        return cls(vectors.shape[1], ids, vectors, params, recall)

    def save(self, path: Path) -> None:
        """Write ids and vectors as an uncompressed ``.npz``."""
        with open(path, "wb") as f:
            np.savez(f, ids=self._ids, vectors=self._vectors)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def ntotal(self) -> int:
        """Number of vectors stored."""
        return len(self._ids)

    @property
    def is_trained(self) -> bool:
        """Always: flat storage needs no training."""
        return True

    @property
    def supports_remove(self) -> bool:
        """Always."""
        return True

    def ids(self) -> np.ndarray:
        """Every id stored, in insertion order."""
        return self._ids.copy()

    def tunable(self) -> dict[str, int]:
        """No knobs: the search is exact."""
        return {}

    def set_params(self, params: SearchParams) -> None:
        """Remembered only (no knob applies)."""
        self.params = params

    def reader(self) -> VectorReader:
        """The stored vectors themselves."""
        return _FlatReader(self._ids, self._vectors)

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._ids = np.concatenate([self._ids, ids])
        self._vectors = np.concatenate([self._vectors, vectors])

    def _remove(self, ids: np.ndarray) -> int:
        gone = np.isin(self._ids, ids)
        self._ids, self._vectors = self._ids[~gone], self._vectors[~gone]
        return int(gone.sum())

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = exact_search(queries, self._vectors, k, ids=self._ids)
        return np.where(ids < 0, _PAD_SCORE, scores).astype(np.float32), ids

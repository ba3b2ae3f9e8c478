"""The index-backend seam: what the store asks of a vector index, and the registry that picks one by name.

A backend is one module under ``index/backends/`` holding a ``VectorBackend`` subclass, registered by name in
``BACKENDS`` (or at run time with ``register_backend``); ``IndexConfig.backend`` names the one a store builds with,
and each index file's sidecar names the one that wrote it. Every registered backend passes
``tests/index/test_backend_contract.py``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import numpy as np

from index.config import IndexConfig, SearchParams
from index.errors import InvalidIndexConfig, UnsupportedIndexOperation
from index.validate import check_ids, check_vectors

# name -> "module:Class", imported on first use; the name is also the suffix of the backend's index files
BACKENDS: dict[str, str] = {
    "faiss": "index.backends.faiss_index:FaissIndex",
    "exact": "index.backends.exact:ExactIndex",
}
DEFAULT_BACKEND = "faiss"


class VectorReader(Protocol):
    """Reads stored vectors back by id, for comparing an index with the catalog (``index.verify``)."""

    exact: bool  # False: the codec has no exact round trip, only a gross difference can be caught

    def stored(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of the ids present, the vectors stored for the present ones, in order)."""
        ...

    def expected(self, x: np.ndarray) -> np.ndarray:
        """What the index stores for catalog vectors ``x`` (its codec's round trip; ``x`` for flat storage)."""
        ...


class VectorBackend(ABC):
    """One vector index over int64 ids, inner product on unit float32 vectors of one dimension (decision 1).

    The public methods check every vector and id array, then call the ``_train``/``_add``/``_remove``/``_search``
    of the implementation, which may assume valid input.
    """

    name: ClassVar[str]
    factory: str  # the index type (a FAISS factory string, "Flat" for the exact backend)
    params: SearchParams
    recall: float | None  # recall@k reached when the search parameters were tuned (None: never measured)

    # ---- choosing, creating, persisting -----------------------------------------------------------

    @classmethod
    @abstractmethod
    def choose_factory(cls, n: int, dim: int, config: IndexConfig) -> str:
        """The index type for ``n`` vectors of ``dim`` (``config.factory`` when set)."""

    @classmethod
    @abstractmethod
    def train_size(cls, n: int, factory: str, config: IndexConfig) -> int:
        """How many of ``n`` vectors to train a ``factory`` index on (0: it needs no training)."""

    @classmethod
    @abstractmethod
    def create(cls, dim: int, factory: str, device: str = "cpu") -> Self:
        """A new empty (possibly untrained) index; ``InvalidIndexConfig`` when ``factory`` cannot be built."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, factory: str, params: SearchParams, recall: float | None, device: str = "cpu") -> Self:
        """Read an index file written by ``save``; ``IndexCorrupt`` when it cannot be read."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the index to ``path`` (the caller writes it under a temp name, fsyncs and renames)."""

    # ---- state ------------------------------------------------------------------------------------

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector dimension."""

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of vectors stored."""

    @property
    @abstractmethod
    def is_trained(self) -> bool:
        """Whether the index can take vectors."""

    @property
    @abstractmethod
    def supports_remove(self) -> bool:
        """Whether ids can be removed (the store rebuilds an index that cannot)."""

    @property
    def on_gpu(self) -> bool:
        """Whether searches run on a GPU."""
        return False

    @abstractmethod
    def ids(self) -> np.ndarray:
        """Every id stored (int64, unsorted)."""

    @abstractmethod
    def tunable(self) -> dict[str, int]:
        """Which search knobs this index has, with their upper bound (e.g. ``{"nprobe": nlist}``); {} for none."""

    @abstractmethod
    def set_params(self, params: SearchParams) -> None:
        """Apply search parameters (knobs this index lacks are ignored) and remember them in ``params``."""

    @abstractmethod
    def reader(self) -> VectorReader:
        """A reader of the stored vectors, for ``index.verify.compare_vectors``."""

    def describe(self) -> dict[str, Any]:
        """What this index is, JSON-ready: backend, type, dimension, size, search parameters, reached recall."""
        return {"backend": self.name, "factory": self.factory, "dim": self.dim, "ntotal": self.ntotal,
                "params": self.params.to_dict(), "recall": self.recall, "on_gpu": self.on_gpu}

    # ---- checked operations -----------------------------------------------------------------------

    def train(self, vectors: np.ndarray) -> None:
        """Train on a sample of unit vectors (no-op for an index that needs none or is trained)."""
        vectors = check_vectors(vectors, self.dim)
        if not self.is_trained:
            self._train(vectors)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under int64 ids; ids must not already be present."""
        vectors = check_vectors(vectors, self.dim)
        ids = check_ids(ids, len(vectors))
        if len(ids):
            self._add(ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (absent ones are ignored); returns how many vectors went away."""
        ids = check_ids(ids)
        if not len(ids):
            return 0
        if not self.supports_remove:
            raise UnsupportedIndexOperation(f"{self.name} cannot remove ids from a {self.factory!r} index")
        return self._remove(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (float32 scores, int64 ids), ids -1 where fewer than k vectors are found."""
        return self._search(check_vectors(queries, self.dim), k)

    def _train(self, vectors: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} reports untrained but cannot train")

    @abstractmethod
    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def _remove(self, ids: np.ndarray) -> int: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def register_backend(name: str, target: str | type[VectorBackend]) -> None:
    """Register a backend under ``name``: its class, or ``"module:Class"`` imported on first use."""
    if not name.isidentifier():
        raise InvalidIndexConfig(f"index backend name must be an identifier (it names index files), got {name!r}")
    BACKENDS[name] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def backend_class(name: str) -> type[VectorBackend]:
    """The backend registered under ``name``; ``InvalidIndexConfig`` for an unknown one."""
    target = BACKENDS.get(name) if isinstance(name, str) else None
    if target is None:
        raise InvalidIndexConfig(f"unknown index backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, VectorBackend) and cls.name == name):
        raise InvalidIndexConfig(f"index backend {name!r} ({target}) is not a VectorBackend named {name!r}")
    return cls

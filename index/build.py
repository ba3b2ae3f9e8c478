"""Build a tuned index of the configured backend from a vector source: in-memory arrays or a stream (the catalog),
any corpus size."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from index.backend import VectorBackend, backend_class
from index.config import IndexConfig
from index.errors import InvalidIndexConfig
from index.exact import TopK
from index.tuning import TuneResult, drop_self, tune
from index.validate import check_ids, check_vectors

log = logging.getLogger(__name__)

Chunks = Iterator[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class VectorSource:
    """A vector set to index: all its ids, a way to stream (ids, vectors) chunks, a way to fetch some ids."""

    ids: np.ndarray
    dim: int
    chunks: Callable[[], Chunks]
    fetch: Callable[[np.ndarray], np.ndarray]

    @classmethod
    def from_arrays(cls, ids: np.ndarray, vectors: np.ndarray, chunk: int = 65536) -> VectorSource:
        """A source over in-memory arrays."""
        position = {int(i): p for p, i in enumerate(ids)}

        def chunks() -> Chunks:
            for s in range(0, len(ids), chunk):
                yield ids[s : s + chunk], vectors[s : s + chunk]

        return cls(ids, vectors.shape[1], chunks, lambda some: vectors[[position[int(i)] for i in some]])


def _held_out(ids: np.ndarray, trained: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` ids outside the training sample (any ids when all were trained on)."""
    pool = np.setdiff1d(ids, trained) if len(trained) < len(ids) else ids
    rng = np.random.default_rng(seed + 1)
    return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))


def tune_on_held_out(index: VectorBackend, source: VectorSource, config: IndexConfig,
                     trained: np.ndarray) -> TuneResult | None:
    """Tune with stored vectors outside the training sample as queries (their own id left out), exact truth."""
    if not index.tunable() or len(source.ids) == 0:
        index.recall = 1.0 if len(source.ids) else None
        return None
    own = _held_out(source.ids, trained, config.tune_queries, config.seed)
    queries = check_vectors(source.fetch(own), source.dim)
    top = TopK(len(queries), config.k + 1)
    for ids, vectors in source.chunks():
        top.add_chunk(queries, vectors, ids)
    truth = drop_self(top.I, own, config.k)
    return tune(index, queries, truth, config.target_recall, config.k, self_ids=own)


def build_from_source(source: VectorSource, config: IndexConfig | None = None, *, device: str = "cpu") -> VectorBackend:
    """Choose the backend's index type for the corpus, train on a seeded sample, stream everything in, tune to the
    target."""
    config = config or IndexConfig()
    backend = backend_class(config.backend)
    factory = backend.choose_factory(len(source.ids), source.dim, config)
    index = backend.create(source.dim, factory, device=device)
    trained = np.zeros(0, dtype=np.int64)
    if not index.is_trained:
        size = backend.train_size(len(source.ids), factory, config)
        if size == 0:
            raise InvalidIndexConfig(f"{factory!r} needs training vectors and the vector set is empty")
        rng = np.random.default_rng(config.seed)
        trained = np.sort(rng.choice(source.ids, size=size, replace=False))
        index.train(source.fetch(trained))
    for ids, vectors in source.chunks():
        index.add(ids, vectors)
    result = tune_on_held_out(index, source, config, trained)
    log.info("built %s %s over %d vectors; params %s recall %s", backend.name, factory, index.ntotal,
             index.params.to_dict(), None if result is None else round(result.recall, 4))
    return index


def build_index(ids: np.ndarray, vectors: np.ndarray, config: IndexConfig | None = None, *,
                dim: int | None = None, device: str = "cpu") -> VectorBackend:
    """``build_from_source`` over in-memory ids and vectors."""
    vectors = check_vectors(vectors, dim)
    ids = check_ids(ids, len(vectors))
    return build_from_source(VectorSource.from_arrays(ids, vectors), config, device=device)

"""Build a tuned VectorIndex from in-memory ids and vectors (small and mid-size corpora, rebuilds)."""

from __future__ import annotations

import logging

import numpy as np

from index.exact import exact_search
from index.factory import IndexConfig, choose_factory, sample_rows, train_size
from index.tuning import TuneResult, drop_self, tune
from index.validate import check_ids, check_vectors
from index.vector_index import VectorIndex

log = logging.getLogger(__name__)


def tune_on_held_out(index: VectorIndex, ids: np.ndarray, vectors: np.ndarray, config: IndexConfig,
                     exclude: np.ndarray | None = None) -> TuneResult | None:
    """Tune with stored vectors outside the training sample as queries (their own id left out), exact truth."""
    if not index.tunable() or len(vectors) == 0:
        index.recall = 1.0 if len(vectors) else None
        return None
    rng = np.random.default_rng(config.seed + 1)
    pool = np.setdiff1d(np.arange(len(vectors)), exclude) if exclude is not None else np.arange(len(vectors))
    if len(pool) == 0:
        pool = np.arange(len(vectors))
    rows = np.sort(rng.choice(pool, size=min(config.tune_queries, len(pool)), replace=False))
    queries, own = vectors[rows], ids[rows]
    _, truth = exact_search(queries, vectors, config.k + 1, ids)
    truth = drop_self(truth, own, config.k)
    return tune(index, queries, truth, config.target_recall, config.k, self_ids=own)


def build_index(ids: np.ndarray, vectors: np.ndarray, config: IndexConfig = IndexConfig(), *,
                dim: int | None = None, device: str = "cpu") -> VectorIndex:
    """Choose the index type for this corpus, train on a sample, add everything, tune to the target recall."""
    vectors = check_vectors(vectors, dim)
    ids = check_ids(ids, len(vectors))
    dim = vectors.shape[1] if dim is None else dim
    factory = choose_factory(len(vectors), dim, config)
    index = VectorIndex.create(dim, factory, device=device)
    rows = None
    if not index.is_trained:
        size = train_size(len(vectors), factory, config)
        rows = sample_rows(len(vectors), size, config.seed)
        if len(rows) == 0:
            raise_untrainable(factory)
        index.train(vectors[rows])
    index.add(ids, vectors)
    result = tune_on_held_out(index, ids, vectors, config, rows if rows is not None and len(rows) < len(vectors) else None)
    log.info("built %s over %d vectors; params %s recall %s", factory, len(ids),
             index.params.to_dict(), None if result is None else round(result.recall, 4))
    return index


def raise_untrainable(factory: str) -> None:
    """An index that needs training cannot be built from zero vectors."""
    from index.errors import InvalidIndexConfig

    raise InvalidIndexConfig(f"{factory!r} needs training vectors and the vector set is empty")

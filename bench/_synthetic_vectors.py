"""Seeded synthetic clustered unit vectors, generated in chunks so any corpus size streams in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusteredSpec:
    """Mixture of clusters on a low-dimensional latent manifold plus isotropic noise, then normalised.

    Each vector is ``normalise(center[c] + spread * z @ basis + noise * e)`` with ``z`` a
    ``latent_dim``-dim Gaussian (scaled to unit expected norm) and ``e`` isotropic Gaussian noise of
    unit expected norm. Real embeddings are clustered and of low intrinsic dimension; uniform
    vectors in 512-d are not, and make every ANN method look worse than it is.
    """

    dim: int = 512
    n_clusters: int = 1024
    latent_dim: int = 32
    spread: float = 0.7
    noise: float = 0.3
    seed: int = 0


class ClusteredVectors:
    """Deterministic generator: corpus row ``i`` is the same whatever the chunk size; queries use another stream."""

    def __init__(self, spec: ClusteredSpec) -> None:
        self.spec = spec
        rng = np.random.default_rng([spec.seed, 0])
        centers = rng.standard_normal((spec.n_clusters, spec.dim), dtype=np.float32)
        self.centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        basis = rng.standard_normal((spec.latent_dim, spec.dim), dtype=np.float32)
        self.basis = basis / np.linalg.norm(basis, axis=1, keepdims=True)

    def _block(self, stream: int, block: int, n: int) -> np.ndarray:
        s = self.spec
        rng = np.random.default_rng([s.seed, stream, block])
        labels = rng.integers(0, s.n_clusters, size=n)
        z = rng.standard_normal((n, s.latent_dim), dtype=np.float32) * np.float32(s.spread / np.sqrt(s.latent_dim))
        x = self.centers[labels] + z @ self.basis
        x += rng.standard_normal((n, s.dim), dtype=np.float32) * np.float32(s.noise / np.sqrt(s.dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def corpus_chunks(self, n: int, chunk: int = 100_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids, vectors) for rows 0..n-1 in order; ids are the row numbers (int64)."""
        block = 10_000
        start = 0
        while start < n:
            stop = min(n, start + chunk)
            first, last = start // block, (stop - 1) // block
            parts = [self._block(1, b, block) for b in range(first, last + 1)]
            x = np.concatenate(parts) if len(parts) > 1 else parts[0]
            off = start - first * block
            yield np.arange(start, stop, dtype=np.int64), np.ascontiguousarray(x[off : off + stop - start])
            start = stop

    def corpus(self, n: int) -> np.ndarray:
        """The first ``n`` corpus rows in memory (small n only)."""
        return np.concatenate([x for _, x in self.corpus_chunks(n)]) if n else np.zeros((0, self.spec.dim), np.float32)

    def queries(self, n: int) -> np.ndarray:
        """``n`` query vectors from the same distribution, never in the corpus."""
        return self._block(2, 0, n)

"""Seeded data shared by the index-layer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index import Catalog


def unit_vectors(n: int, dim: int = 32, seed: int = 0, clusters: int = 16) -> np.ndarray:
    """Clustered float32 unit vectors: same clusters for every seed, points drawn from ``seed``."""
    centers = np.random.default_rng(12345).standard_normal((clusters, dim)).astype(np.float32)
    noise = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)  # row i same for any n
    x = centers[(np.arange(n) * 7919 + seed) % clusters] + 0.6 * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fill_catalog(catalog: Catalog, n: int, *, dim: int = 32, seed: int = 0, model: str = "m",
                 start: int = 0) -> list[int]:
    """Add ``n`` image items with one representation and one vector each; returns representation ids."""
    x = unit_vectors(n, dim, seed)
    with catalog.atomic():
        reps = []
        for i in range(start, start + n):
            item = catalog.upsert_item(f"file:///data/img{i:05d}.jpg", "image", sha256=f"{i:064x}", size=i,
                                       mtime=1000.0 + i, metadata={"batch": seed})
            reps.append(catalog.add_representation(item, "image", "image"))
        catalog.write_vectors(model, reps, x)
    return reps


def index_file(root: Path, model: str = "m", modality: str = "image") -> Path:
    """Path of a vector set's faiss file."""
    from index.persist import index_paths

    return index_paths(root, model, modality)[0]

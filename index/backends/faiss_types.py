"""Choose a FAISS index type (a factory string) from corpus size and memory, and how many vectors train it."""

from __future__ import annotations

import math

from index.config import IndexConfig, memory_budget

# Bytes per vector beyond the codes: the IDMap id (8) and the IVF list id (8).
_ID_BYTES = 16


def nlist_for(n: int) -> int:
    """IVF list count: the power of two nearest 2*sqrt(n), within [16, 4096] (CPU build time bound)."""
    if n <= 0:
        return 16
    return int(min(4096, max(16, 2 ** round(math.log2(2 * math.sqrt(n))))))


def _pq_m(dim: int) -> int:
    """PQ sub-quantizer count (4-bit fast scan): dim/8 rounded to a divisor of dim, at least 1."""
    m = max(1, dim // 8)
    while dim % m:
        m -= 1
    return m


def choose_factory(n: int, dim: int, config: IndexConfig | None = None) -> str:
    """Factory string for ``n`` vectors of ``dim``: Flat, IVF-Flat, or IVF-PQ (+ scalar refine) by size and memory."""
    config = config or IndexConfig()
    if config.factory:
        return config.factory
    share = memory_budget(config) * config.index_memory_share
    flat_bytes = n * (dim * 4 + _ID_BYTES)
    if n <= config.flat_max and flat_bytes <= share:
        return "IDMap,Flat"
    nlist = nlist_for(n)
    if n <= config.ivf_flat_max and flat_bytes <= share:
        return f"IVF{nlist},Flat"
    m = _pq_m(dim)
    pq_bytes = m / 2 + _ID_BYTES
    for refine, bits in (("SQ8", 8), ("SQ6", 6), ("SQ4", 4)):
        if n * (pq_bytes + dim * bits / 8) <= share:
            return f"IDMap,IVF{nlist},PQ{m}x4fs,Refine({refine})"
    return f"IVF{nlist},PQ{m}x4fs"


def train_size(n: int, factory: str, config: IndexConfig) -> int:
    """How many vectors to train on: enough for k-means on the IVF lists, capped by ``max_train``."""
    if "IVF" not in factory and "PQ" not in factory and "SQ" not in factory:
        return 0
    lists = int(factory.split("IVF", 1)[1].split(",", 1)[0].split("_", 1)[0]) if "IVF" in factory else 256
    return int(min(n, max(config.train_per_list * lists, 10_000), max(config.max_train, lists * 39)))

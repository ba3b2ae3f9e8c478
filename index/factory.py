"""Choose a FAISS index type from corpus size and memory, and describe search-time parameters."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

# Bytes per vector beyond the codes: the IDMap id (8) and the IVF list id (8).
_ID_BYTES = 16


@dataclass(frozen=True)
class IndexConfig:
    """How vector indexes are built; ``factory`` overrides the automatic choice."""

    factory: str | None = None
    target_recall: float = 0.95
    k: int = 10
    memory_budget_bytes: int | None = None  # None: half of physical memory
    index_memory_share: float = 0.75  # part of the budget the index itself may take
    flat_max: int = 20_000
    ivf_flat_max: int = 4_000_000
    train_per_list: int = 40
    max_train: int = 200_000
    tune_queries: int = 256
    seed: int = 0


@dataclass(frozen=True)
class SearchParams:
    """Search-time knobs: IVF ``nprobe``, HNSW ``efSearch``, refine ``k_factor`` (None: not applicable)."""

    nprobe: int | None = None
    efSearch: int | None = None
    k_factor: int | None = None

    def to_dict(self) -> dict[str, int]:
        """Only the knobs that are set."""
        return {k: v for k, v in (("nprobe", self.nprobe), ("efSearch", self.efSearch), ("k_factor", self.k_factor)) if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, int] | None) -> SearchParams:
        """Inverse of ``to_dict``."""
        d = d or {}
        return cls(nprobe=d.get("nprobe"), efSearch=d.get("efSearch"), k_factor=d.get("k_factor"))


def memory_budget(config: IndexConfig) -> int:
    """The memory budget in bytes: the configured one, else half of physical memory."""
    if config.memory_budget_bytes is not None:
        return config.memory_budget_bytes
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)


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

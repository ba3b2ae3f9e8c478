"""How vector indexes are built (backend, type, recall target, memory) and the search-time knobs they can take."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class IndexConfig:
    """How vector indexes are built: ``backend`` names one in ``index.backend.BACKENDS``; ``factory`` overrides the
    backend's automatic choice of index type (for FAISS a factory string)."""

    backend: str = "faiss"
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

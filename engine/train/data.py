"""Training data as tensors: paired rows of two modalities, with groups marking which rows are positives."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch


@dataclass
class TowerInputs:
    """One modality's rows of a pair set: tower inputs (preprocessed tensors, or features of a frozen tower)."""

    modality: str
    tensors: dict[str, torch.Tensor]
    frozen_features: bool = False
    keys: torch.Tensor | None = None  # row -> distinct item, so evaluation embeds each item once

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def take(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``index`` of every tensor."""
        return {k: v[index] for k, v in self.tensors.items()}


@dataclass
class PairSet:
    """Row i of ``a`` pairs with row i of ``b``; rows with equal ``groups`` are all positives of each other."""

    name: str
    a: TowerInputs
    b: TowerInputs
    groups: torch.Tensor

    def __post_init__(self) -> None:
        if not len(self.a) == len(self.b) == len(self.groups):
            raise ValueError(f"pair set {self.name}: {len(self.a)} a rows, {len(self.b)} b rows, {len(self.groups)} groups")


def batched(fn: Callable[[Sequence[Any]], dict[str, torch.Tensor]], inputs: Sequence[Any], size: int = 64) -> dict[str, torch.Tensor]:
    """Apply a preprocessor in chunks and concatenate (pads last dims of token tensors to a common length)."""
    parts = [fn(inputs[i : i + size]) for i in range(0, len(inputs), size)]
    out: dict[str, torch.Tensor] = {}
    for key in parts[0]:
        tensors = [p[key] for p in parts]
        if tensors[0].dim() == 2 and len({t.shape[1] for t in tensors}) > 1:
            width = max(t.shape[1] for t in tensors)
            tensors = [torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in tensors]
        out[key] = torch.cat(tensors)
    return out


class TensorCache:
    """Tensors on disk keyed by a description of what produced them, so a second run reuses them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def key(self, **description: Any) -> str:
        """Stable hash of a JSON-able description."""
        return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def get_or_make(self, key: str, make: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Load the cached tensors for ``key`` or compute, save and return them."""
        path = self.root / f"{key}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True)
        tensors = make()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(tensors, tmp)
        tmp.replace(path)
        return tensors


def group_ids(labels: Sequence[Any]) -> torch.Tensor:
    """Integer group ids for arbitrary hashable labels, in first-seen order."""
    index: dict[Any, int] = {}
    return torch.tensor([index.setdefault(label, len(index)) for label in labels], dtype=torch.long)


def recall_at_1(a: np.ndarray, b: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """a->b and b->a recall@1 with group-level relevance, over unit vectors."""
    sims = a @ b.T
    return (float(np.mean(groups[sims.argmax(axis=1)] == groups)), float(np.mean(groups[sims.argmax(axis=0)] == groups)))

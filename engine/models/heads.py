"""Projection heads into the shared space: identity, linear or MLP, always unit-norm output."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import InvalidPreset
from engine.models.kinds import HEAD_KINDS
from engine.models.serialize import load_config, load_state, save_module



@dataclass(frozen=True)
class HeadConfig:
    """Shape of a head: kind, input and output width, hidden width for MLPs."""

    kind: str
    in_dim: int
    out_dim: int
    hidden_dim: int | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise InvalidPreset(f"head kind {self.kind!r} is not one of {HEAD_KINDS}")
        if self.kind == "identity" and self.in_dim != self.out_dim:
            raise InvalidPreset(f"identity head needs in_dim == out_dim, got {self.in_dim} -> {self.out_dim}")


class Head(nn.Module):
    """Maps tower features to unit vectors of the shared space."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        if config.kind == "identity":
            self.net: nn.Module = nn.Identity()
        elif config.kind == "linear":
            self.net = nn.Linear(config.in_dim, config.out_dim)
        else:
            hidden = config.hidden_dim or max(config.in_dim, config.out_dim)
            self.net = nn.Sequential(
                nn.Linear(config.in_dim, hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(hidden, config.out_dim)
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Project and L2-normalise."""
        return F.normalize(self.net(features), dim=-1)

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory``."""
        return save_module(self, {"type": "head", **asdict(self.config)}, directory)

    @classmethod
    def load(cls, directory: str | Path, map_location: str | torch.device = "cpu", random_weights: bool = False) -> "Head":
        """Load a head saved with ``save`` (with ``random_weights``, only its shape)."""
        raw = load_config(directory)
        raw.pop("type", None)
        head = cls(HeadConfig(**raw))
        if not random_weights:
            head.load_state_dict(load_state(directory))
        return head.to(map_location).eval()

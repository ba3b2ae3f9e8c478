"""An ensemble tower: several small towers, each with its own projection into the shared space, averaged.

Members are trained one at a time against the same frozen text and image embeddings (``engine.train.members``),
so all of them already live in one space and their unit vectors can be averaged directly. Averaging members that
differ only in their random start cuts the variance of each one's errors: on speakers never heard in training,
the ranking mistakes of two seeds overlap little.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import InvalidPreset
from engine.models.heads import Head
from engine.models.presets import TowerSpec
from engine.models.serialize import load_config, save_module
from engine.models.towers.base import Tower, TowerOutput
from engine.models.towers.small import SmallAudioCNN, SmallImageCNN
from engine.models.weights import resolve

_MEMBER_TYPES = {cls.__name__: cls for cls in (SmallAudioCNN, SmallImageCNN)}


def front_end(tower: Tower) -> tuple:
    """The config fields that decide a small tower's preprocessing."""
    c = tower.config  # type: ignore[attr-defined]
    if isinstance(tower, SmallAudioCNN):
        return (c.sample_rate, c.n_mels, c.n_fft, c.hop_length, c.clip_seconds)
    return (c.image_size,)


class EnsembleTower(Tower):
    """Mean of the members' unit vectors ``head_k(tower_k(x))``; its output already lies in the shared space.
    Its tokens are the first member's (one member's map stands for the item)."""

    def __init__(self, towers: Sequence[Tower], heads: Sequence[Head]) -> None:
        super().__init__()
        if not towers or len(towers) != len(heads):
            raise InvalidPreset(f"an ensemble needs one head per member tower, got {len(towers)} towers, {len(heads)} heads")
        first = towers[0]
        if any(type(t) is not type(first) or type(t).__name__ not in _MEMBER_TYPES for t in towers):
            raise InvalidPreset("ensemble members must be small towers of one kind")
        if len({front_end(t) for t in towers}) != 1:  # one preprocessing pass must serve every member
            raise InvalidPreset("ensemble members must share one preprocessing front end")
        dims = {h.config.out_dim for h in heads}
        if len(dims) != 1:
            raise InvalidPreset(f"ensemble member heads project to different widths: {sorted(dims)}")
        self.members = nn.ModuleList(towers)
        self.heads = nn.ModuleList(heads)
        self.modality = first.modality
        self.out_dim = dims.pop()
        self.preprocessor = first.preprocessor

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        """The normalised mean of the members' unit vectors, with the first member's tokens when asked."""
        first = self.members[0].run(batch, with_tokens)
        features = [first.features] + [t.embed(batch) for t in self.members[1:]]
        pooled = F.normalize(torch.stack([h(f) for h, f in zip(self.heads, features)]).mean(0), dim=-1)
        return TowerOutput(pooled, first.tokens, first.mask)

    def save(self, directory: str | Path) -> Path:
        """Write each member's tower and head under ``directory/K/{tower,head}`` and an index ``config.json``."""
        out = Path(directory)
        for k, (tower, head) in enumerate(zip(self.members, self.heads)):
            tower.save(out / str(k) / "tower")
            head.save(out / str(k) / "head")
        return save_module(nn.Module(), {"type": "EnsembleTower", "members": len(self.members),
                                         "member_type": type(self.members[0]).__name__}, out)

    @classmethod
    def load(cls, directory: str | Path, random_weights: bool = False) -> "EnsembleTower":
        """Load an ensemble saved with ``save``; with ``random_weights``, the same architecture freshly initialised."""
        root = Path(directory)
        raw = load_config(root)
        member = _MEMBER_TYPES.get(raw.get("member_type", ""))
        if raw.get("type") != "EnsembleTower" or member is None or int(raw.get("members", 0)) < 1:
            raise InvalidPreset(f"{root}: not an ensemble tower of small members (config {raw})")
        n = int(raw["members"])
        return cls([member.load(root / str(k) / "tower", random_weights) for k in range(n)],
                   [Head.load(root / str(k) / "head", random_weights=random_weights) for k in range(n)]).eval()


def build(spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> EnsembleTower:
    """The ``ensemble`` kind: saved members; a random build copies their architecture, so it needs their configs."""
    return EnsembleTower.load(resolve(spec.source).path, random_weights)

"""Tower factory: build the towers a preset names, each by its kind's registered builder, sharing one model where
two modalities share a source."""

from __future__ import annotations

import zlib
from typing import Iterable

import torch

from engine.models.presets import Preset, TowerSpec
from engine.models.towers.base import Tower
from engine.models.towers.registry import tower_kind


def tower_seed(spec: TowerSpec, seed: int) -> int:
    """The seed a tower is built under: fixed per source, so a random tower is the same whichever others are built."""
    return seed + zlib.crc32(f"{spec.kind}|{spec.source}".encode()) % 100_003


def build_towers(
    preset: Preset, random_weights: bool, modalities: Iterable[str] | None = None, seed: int = 0,
    shared: dict | None = None,
) -> dict[str, Tower]:
    """Build the preset's towers (seeded per tower when random), one shared model per open_clip source;
    pass the same ``shared`` dict to later calls so modalities loaded one at a time still share that model."""
    shared = {} if shared is None else shared
    towers: dict[str, Tower] = {}
    for modality in modalities or preset.modalities:
        spec = preset.towers[modality]
        kind = tower_kind(spec.kind)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tower_seed(spec, seed))
            towers[modality] = kind.build(spec, modality, random_weights, shared)
    return towers

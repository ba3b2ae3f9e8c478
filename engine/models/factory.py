"""Tower factory: build the towers a preset names, sharing one model where two modalities share a source."""

from __future__ import annotations

import zlib
from typing import Iterable

import torch

from engine.models.presets import Preset, TowerSpec
from engine.models.towers.base import Tower
from engine.models.towers.clap_audio import clap_audio_tower
from engine.models.towers.ensemble import EnsembleTower
from engine.models.towers.hf_text import hf_text_tower
from engine.models.towers.open_clip_towers import open_clip_towers
from engine.models.towers.small import SmallAudioCNN, SmallImageCNN
from engine.models.weights import resolve


def _small(spec: TowerSpec, random_weights: bool) -> Tower:
    cls = SmallAudioCNN if spec.kind == "small_audio_cnn" else SmallImageCNN
    if random_weights:
        return cls(cls.config_type(**dict(spec.config or {})))
    return cls.load(resolve(spec.source).path)


def _build_one(spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> Tower:
    if spec.kind == "open_clip":
        key = ("open_clip", str(spec.source))
        if key not in shared:
            shared[key] = open_clip_towers(spec.source, random_weights)
        return shared[key][modality]
    if spec.kind == "hf_text":
        return hf_text_tower(spec.source, random_weights, spec.sha256, spec.config)
    if spec.kind == "clap_audio":
        return clap_audio_tower(spec.source, random_weights, spec.config)
    if spec.kind == "ensemble":  # a random build copies the saved members' architecture, so it needs their configs
        return EnsembleTower.load(resolve(spec.source).path, random_weights)
    return _small(spec, random_weights)


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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tower_seed(spec, seed))
            towers[modality] = _build_one(spec, modality, random_weights, shared)
    return towers

"""Towers: open_clip image/text, transformers text, CLAP audio, small trainable CNNs and ensembles of them."""

from engine.models.towers.base import MODALITIES, Tower
from engine.models.towers.clap_audio import ClapAudioTower
from engine.models.towers.ensemble import EnsembleTower
from engine.models.towers.hf_text import HFTextTower
from engine.models.towers.open_clip_towers import OpenClipImageTower, OpenClipTextTower
from engine.models.towers.small import SmallAudioCNN, SmallAudioConfig, SmallImageCNN, SmallImageConfig

__all__ = [
    "MODALITIES", "Tower", "ClapAudioTower", "EnsembleTower", "HFTextTower", "OpenClipImageTower", "OpenClipTextTower",
    "SmallAudioCNN", "SmallAudioConfig", "SmallImageCNN", "SmallImageConfig",
]

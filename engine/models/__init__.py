"""The model layer: towers, heads and presets projecting media into one shared space."""

from engine.models.audio import AudioClip
from engine.models.encoder import Encoder, load_encoder
from engine.models.heads import Head, HeadConfig
from engine.models.presets import Preset, get_preset, list_presets, parse_preset
from engine.models.sources import ModelSource, parse_source
from engine.models.status import ComponentStatus, preset_status
from engine.models.towers import SmallAudioCNN, SmallAudioConfig, SmallImageCNN, SmallImageConfig, Tower

__all__ = [
    "AudioClip", "ComponentStatus", "Encoder", "Head", "HeadConfig", "ModelSource", "Preset",
    "SmallAudioCNN", "SmallAudioConfig", "SmallImageCNN", "SmallImageConfig", "Tower",
    "get_preset", "list_presets", "load_encoder", "parse_preset", "parse_source", "preset_status",
]

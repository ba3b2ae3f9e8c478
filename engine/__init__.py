"""xmodal's engine: models, the ``Engine`` (ingest and search over a store), queries and errors."""

from engine.engine import DEFAULT_PRESET, Engine, default_store
from engine.errors import (
    DeviceUnavailable, InvalidInput, InvalidModelSource, InvalidPreset, PresetNotFound, RerankerUnavailable,
    UnsupportedModality,
    WeightsChecksumMismatch, WeightsUnavailable, XmodalError,
)
from engine.models import AudioClip, Encoder, get_preset, list_presets, load_encoder
from engine.query import Filters, QueryPart, Result

__all__ = [
    "DEFAULT_PRESET", "AudioClip", "DeviceUnavailable", "Encoder", "Engine", "Filters", "InvalidInput",
    "InvalidModelSource", "InvalidPreset", "PresetNotFound", "QueryPart", "RerankerUnavailable", "Result", "UnsupportedModality",
    "WeightsChecksumMismatch", "WeightsUnavailable", "XmodalError", "default_store", "get_preset", "list_presets",
    "load_encoder",
]

"""The model layer: towers, heads and presets projecting media into one shared space.

The names below load on first use (module ``__getattr__``): reading presets and their weights' status
(``xmodal models``) does not import torch; towers, heads and encoders do.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AudioClip": "engine.models.audio", "Encoder": "engine.models.encoder", "load_encoder": "engine.models.encoder",
    "Head": "engine.models.heads", "HeadConfig": "engine.models.heads", "Preset": "engine.models.presets",
    "get_preset": "engine.models.presets", "list_presets": "engine.models.presets",
    "parse_preset": "engine.models.presets", "ModelSource": "engine.models.sources",
    "parse_source": "engine.models.sources", "ComponentStatus": "engine.models.status",
    "preset_status": "engine.models.status", "SmallAudioCNN": "engine.models.towers",
    "SmallAudioConfig": "engine.models.towers", "SmallImageCNN": "engine.models.towers",
    "SmallImageConfig": "engine.models.towers", "Tower": "engine.models.towers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` when it is first asked for."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

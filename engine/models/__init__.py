"""The model layer: towers, heads and presets projecting media into one shared space.

The names below load on first use (module ``__getattr__``): reading presets and their weights' status
(``xmodal models``) does not import torch; towers, heads and encoders do.
"""

from __future__ import annotations

from core.lazy import lazy_face

_EXPORTS = {
    "AudioClip": "core.media", "Encoder": "engine.models.encoder", "load_encoder": "engine.models.encoder",
    "Head": "engine.models.heads", "HeadConfig": "engine.models.heads", "Preset": "engine.models.presets",
    "get_preset": "engine.models.presets", "list_presets": "engine.models.presets",
    "parse_preset": "engine.models.presets", "ModelSource": "engine.models.sources",
    "parse_source": "engine.models.sources", "ComponentStatus": "engine.models.status",
    "preset_status": "engine.models.status", "SmallAudioCNN": "engine.models.towers",
    "SmallAudioConfig": "engine.models.towers", "SmallImageCNN": "engine.models.towers",
    "SmallImageConfig": "engine.models.towers", "Tower": "engine.models.towers",
    "ClapAudioTower": "engine.models.towers", "OpenClipImageTower": "engine.models.towers",
    "OpenClipTextTower": "engine.models.towers",
    "EnrichOptions": "engine.models.enrichers", "make_enrichers": "engine.models.enrichers",
    "SpeechGate": "engine.models.speech_gate", "SPEECH_GATE": "engine.models.speech_gate",
    "GATE_FEATURES": "engine.models.speech_gate",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)

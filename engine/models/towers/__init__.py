"""Towers: open_clip image/text, transformers text, CLAP audio, small trainable CNNs and ensembles of them.

The names below load on first use, so the kind registry (``engine.models.towers.registry``) reads without torch.
"""

from __future__ import annotations

from core.lazy import lazy_face

_EXPORTS = {
    "MODALITIES": "engine.models.towers.base", "Tower": "engine.models.towers.base",
    "TowerOutput": "engine.models.towers.base", "ClapAudioTower": "engine.models.towers.clap_audio",
    "EnsembleTower": "engine.models.towers.ensemble", "HFTextTower": "engine.models.towers.hf_text",
    "OpenClipImageTower": "engine.models.towers.open_clip_towers",
    "OpenClipTextTower": "engine.models.towers.open_clip_towers",
    "SmallAudioCNN": "engine.models.towers.small", "SmallAudioConfig": "engine.models.towers.small",
    "SmallImageCNN": "engine.models.towers.small", "SmallImageConfig": "engine.models.towers.small",
    "TowerKind": "engine.models.towers.registry", "register_tower_kind": "engine.models.towers.registry",
    "tower_kind": "engine.models.towers.registry", "tower_kinds": "engine.models.towers.registry",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)

"""xmodal's engine: models, the ``Engine`` (ingest and search over a store), queries and errors.

The names below load on first use (module ``__getattr__``), so ``import engine.errors`` or ``xmodal --help``
does not pull in torch.
"""

from __future__ import annotations

from engine.lazy import lazy_face

_EXPORTS = {
    "DEFAULT_PRESET": "engine.engine", "Engine": "engine.engine", "default_store": "engine.engine",
    "DeviceUnavailable": "engine.errors", "InvalidInput": "engine.errors", "InvalidModelSource": "engine.errors",
    "InvalidPreset": "engine.errors", "PresetNotFound": "engine.errors", "RerankerUnavailable": "engine.errors",
    "UnsupportedModality": "engine.errors", "WeightsChecksumMismatch": "engine.errors",
    "WeightsUnavailable": "engine.errors", "XmodalError": "engine.errors",
    "AudioClip": "engine.models", "Encoder": "engine.models", "get_preset": "engine.models",
    "list_presets": "engine.models", "load_encoder": "engine.models",
    "Filters": "engine.query", "QueryPart": "engine.query", "Result": "engine.query",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)

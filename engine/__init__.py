"""xmodal's engine: models, the ``Engine`` (ingest and search over a store), queries and errors.

The names below load on first use (module ``__getattr__``), so ``import core.errors`` or ``xmodal --help``
does not pull in torch.
"""

from __future__ import annotations

from core.lazy import lazy_face

_EXPORTS = {
    "DEFAULT_PRESET": "engine.api.facade", "Engine": "engine.api.facade", "default_store": "engine.api.facade",
    "DeviceUnavailable": "core.errors", "InvalidInput": "core.errors", "InvalidModelSource": "core.errors",
    "InvalidPreset": "core.errors", "PresetNotFound": "core.errors", "RerankerUnavailable": "core.errors",
    "UnsupportedModality": "core.errors", "WeightsChecksumMismatch": "core.errors",
    "WeightsUnavailable": "core.errors", "XmodalError": "core.errors",
    "AudioClip": "engine.models", "Encoder": "engine.models", "get_preset": "engine.models",
    "list_presets": "engine.models", "load_encoder": "engine.models",
    "Filters": "engine.query", "QueryPart": "engine.query", "Result": "engine.query",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)

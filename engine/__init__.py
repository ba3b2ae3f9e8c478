"""xmodal's engine: models, the ``Engine`` (ingest and search over a store), queries and errors.

The names below load on first use (module ``__getattr__``), so ``import engine.errors`` or ``xmodal --help``
does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` when it is first asked for."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

"""The library's facade: ``Engine`` over a store, the defaults and the demo.

The names below load on first use (module ``__getattr__``): ``engine.api.defaults`` stays importable without torch.
"""

from __future__ import annotations

from core.lazy import lazy_face

_EXPORTS = {
    "DEFAULT_PRESET": "engine.api.defaults", "default_store": "engine.api.defaults",
    "Engine": "engine.api.facade", "scan_modalities": "engine.api.facade",
    "build_corpus": "engine.api.demo",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
